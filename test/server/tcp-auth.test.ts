/**
 * The tcp:/tcps: authentication codec and its checks, without sockets: every line reads back
 * as written, anything else is an AuthSyntaxError (never another exception); a MAC holds only
 * for its own transcript, so a recorded response fails against a new nonce, another user or
 * another TLS channel; user names that could leave a path component are refused; the secret is
 * the first line of its file and too short a one is a configuration error.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { MailferryError } from '../../src/model/errors.js';
import { readSecretFile } from '../../src/remote/site-file.js';
import {
  AuthSyntaxError,
  computeMac,
  encodeChallenge,
  encodeClientHello,
  encodeResponse,
  encodeResult,
  MAX_AUTH_LINE,
  macMatches,
  newNonce,
  parseChallenge,
  parseClientHello,
  parseResponse,
  parseResult,
  type Transcript,
} from '../../src/remote/tcp-auth.js';
import { checkUserName, userNameProblem } from '../../src/server/user-name.js';

const strip = (b: Buffer) => {
  assert.equal(b[b.length - 1], 0x0a, 'a line ends with LF');
  assert.ok(b.length <= MAX_AUTH_LINE);
  return b.subarray(0, -1);
};
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a));

describe('tcp auth lines', () => {
  it('read back as written', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), bytes32, fc.nat(86_400), bytes32, fc.boolean(), (user, nonce, wait, snonce, cert) => {
        assert.deepEqual(parseClientHello(strip(encodeClientHello({ user, nonce, wait }))), { user, nonce, wait });
        assert.deepEqual(parseChallenge(strip(encodeChallenge({ nonce: snonce, cert }))), { nonce: snonce, cert });
        assert.deepEqual(parseResponse(strip(encodeResponse(nonce))), nonce);
        assert.equal(parseResponse(strip(encodeResponse(undefined))), undefined);
        assert.deepEqual(parseResult(strip(encodeResult({ ok: true, proof: snonce }))), { ok: true, proof: snonce });
        assert.deepEqual(parseResult(strip(encodeResult({ ok: false, kind: 'nouser', error: `unknown user ${user}` }))).ok, false);
      }),
    );
  });

  it('anything else is an AuthSyntaxError, never another exception', () => {
    const parsers = [parseClientHello, parseChallenge, parseResponse, parseResult];
    const junk = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.json().map((j) => Buffer.from(j)),
      fc.record({ auth: fc.anything(), user: fc.anything(), nonce: fc.anything(), wait: fc.anything(), mac: fc.anything(), ok: fc.anything(), cert: fc.anything(), proof: fc.anything() }, { requiredKeys: [] }).map((o) => Buffer.from(JSON.stringify(o) ?? 'x')),
    );
    fc.assert(
      fc.property(junk, (raw) => {
        for (const p of parsers) {
          try {
            p(raw);
          } catch (err) {
            assert.ok(err instanceof AuthSyntaxError, `${p.name}: ${String(err)}`);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses what a careless or hostile peer sends', () => {
    const hello = (o: object) => Buffer.from(JSON.stringify(o));
    const nonce = 'ab'.repeat(32);
    assert.throws(() => parseClientHello(hello({ auth: 2, user: 'a', nonce, wait: 1 })), /version 2 is not supported/);
    assert.throws(() => parseClientHello(hello({ auth: 1, user: 'a', nonce: nonce.toUpperCase(), wait: 1 })), /lowercase hex/);
    assert.throws(() => parseClientHello(hello({ auth: 1, user: 'a', nonce: nonce.slice(2), wait: 1 })), /32 bytes/);
    assert.throws(() => parseClientHello(hello({ auth: 1, user: 'a', nonce, wait: -1 })), /whole seconds/);
    assert.throws(() => parseClientHello(hello({ auth: 1, user: 7, nonce, wait: 1 })), /no user/);
    assert.throws(() => parseClientHello(Buffer.alloc(MAX_AUTH_LINE + 1, 0x20)), /longer than/);
    assert.equal(parseClientHello(hello({ auth: 1, user: 'a', nonce, wait: 1e12 })).wait, 86_400, 'a wait is capped at a day');
    // A server's error text reaches a terminal: no control characters survive.
    const r = parseResult(Buffer.from(JSON.stringify({ ok: false, kind: 'permission', error: 'no\x1b[2Jway\nreally' })));
    assert.deepEqual(r, { ok: false, kind: 'permission', error: 'no [2Jway really' });
    assert.deepEqual(parseResult(Buffer.from('{"ok":false,"kind":"made-up","error":"x"}')), { ok: false, kind: 'tempfail', error: 'x' });
  });
});

describe('tcp auth MAC', () => {
  const secret = Buffer.from('0123456789abcdef0123456789abcdef');
  const base = (): Transcript => ({ serverNonce: newNonce(), clientNonce: newNonce(), user: 'alice', binding: Buffer.from('b'.repeat(32)) });

  it('holds for its own transcript and role only', () => {
    const t = base();
    const mac = computeMac(secret, 'client', t);
    assert.ok(macMatches(secret, 'client', t, mac));
    assert.ok(!macMatches(secret, 'server', t, mac), 'a client MAC is no server proof');
    assert.ok(!macMatches(Buffer.from('another secret of enough bytes!!'), 'client', t, mac));
    assert.ok(!macMatches(secret, 'client', { ...t, user: 'bob' }, mac));
    assert.ok(!macMatches(secret, 'client', { ...t, binding: Buffer.alloc(0) }, mac), 'relayed into plaintext');
    assert.ok(!macMatches(secret, 'client', { ...t, binding: Buffer.from('c'.repeat(32)) }, mac), 'relayed into another TLS channel');
    assert.ok(!macMatches(secret, 'client', t, undefined));
    assert.ok(!macMatches(secret, 'client', t, mac.subarray(0, 31)));
    assert.ok(!macMatches(secret, 'client', t, Buffer.alloc(32)));
  });

  it('a recorded response replayed against a new challenge fails', () => {
    fc.assert(
      fc.property(bytes32, bytes32, bytes32, fc.string({ minLength: 1, maxLength: 40 }), (n1, n2, cn, user) => {
        fc.pre(!n1.equals(n2));
        const recorded = computeMac(secret, 'client', { serverNonce: n1, clientNonce: cn, user, binding: Buffer.alloc(0) });
        assert.ok(!macMatches(secret, 'client', { serverNonce: n2, clientNonce: cn, user, binding: Buffer.alloc(0) }, recorded));
      }),
    );
  });

  it('fields cannot slide into each other', () => {
    const t = base();
    const moved = { ...t, user: `${t.user}x`, binding: t.binding.subarray(1) };
    assert.ok(!computeMac(secret, 'client', t).equals(computeMac(secret, 'client', moved)));
  });
});

describe('user names a client may ask for', () => {
  it('refuses names that are no single path component', () => {
    for (const bad of ['', '../x', 'a/b', '/etc', '..', '.', 'a\0b', 'x'.repeat(256), 'ü'.repeat(128), 'a\nb', 'a\tb', '\ud800x']) {
      assert.ok(userNameProblem(bad), `refused: ${JSON.stringify(bad)}`);
      assert.throws(() => checkUserName(bad), (e: unknown) => e instanceof MailferryError && e.exitCode === 65);
    }
    for (const good of ['alice', 'alice@example.org', 'Jürgen.Müller', 'a.b-c_d+e', '..x', 'x'.repeat(255), '日本語']) {
      assert.equal(userNameProblem(good), undefined, good);
    }
  });

  it('any accepted name stays one component under its root', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (name) => {
        if (userNameProblem(name) !== undefined) return;
        const p = join('/srv/mail', name, 'Maildir');
        assert.equal(dirname(dirname(p)), '/srv/mail');
        assert.equal(basename(dirname(p)), name);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('secret files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-secret-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string | Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, content, { mode: 0o600 });
    return p;
  };

  it('is the first line, a trailing CR dropped', () => {
    assert.equal(readSecretFile(file('a', 'abcdefghijklmnopqrstuvwxyz\nsecond line\n')).toString(), 'abcdefghijklmnopqrstuvwxyz');
    assert.equal(readSecretFile(file('b', 'abcdefghijklmnopqrstuvwxyz\r\n')).toString(), 'abcdefghijklmnopqrstuvwxyz');
    assert.equal(readSecretFile(file('c', 'abcdefghijklmnop')).toString(), 'abcdefghijklmnop');
  });

  it('too short, empty or missing is a configuration error naming the file', () => {
    for (const [name, content] of [['short', 'abc\n'], ['empty', ''], ['blank-first', '\nabcdefghijklmnopqrstuvwxyz\n']] as const) {
      const p = file(name, content);
      assert.throws(() => readSecretFile(p), (e: unknown) => e instanceof MailferryError && e.exitCode === 78 && e.message.includes(p));
    }
    assert.throws(() => readSecretFile(join(dir, 'nope')), (e: unknown) => e instanceof MailferryError && e.exitCode === 78 && /nope: no such file/.test(e.message));
  });

  it("as root with a user's effective uid, the site's root-only secret is still read, and the uid kept", { skip: process.getuid?.() !== 0 }, () => {
    const p = file('root-only', 'abcdefghijklmnopqrstuvwxyz\n');
    chmodSync(p, 0o600);
    const script = `
      const { readSecretFile } = await import(${JSON.stringify(new URL('../../src/remote/site-file.ts', import.meta.url).href)});
      const fs = await import('node:fs');
      process.setegid(65534); process.seteuid(65534);
      let direct = 'readable';
      try { fs.readFileSync(${JSON.stringify(p)}); } catch (e) { direct = e.code; }
      const s = readSecretFile(${JSON.stringify(p)}).toString();
      console.log(JSON.stringify({ direct, s, euid: process.geteuid(), egid: process.getegid() }));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { direct: 'EACCES', s: 'abcdefghijklmnopqrstuvwxyz', euid: 65534, egid: 65534 });
  });
});
