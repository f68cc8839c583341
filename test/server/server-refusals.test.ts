/**
 * Everything `mailferry server` refuses, each as one line on the client with its exit status and
 * one line in the server's log: a wrong or missing secret (77), a certificate the client does
 * not trust (78), plaintext to a TLS-only server and TLS to a plaintext-only one (78), an
 * unknown user (67), user names that are no path component (refused, nothing written outside
 * the mail root); a recorded authentication replayed, and a response relayed from another TLS
 * channel (77); client certificates that authenticate alone, and rogue ones that do not;
 * startup mistakes. The log never holds the secret.
 */
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { corpusMessages } from '../support/corpus.js';
import { authenticate, bindingOf, rawConnect } from './raw-client.js';
import { errorLines, mf, startServer, type ServerProcess } from './server-harness.js';
import { fill, makeServerSite, NOBODY, ROOT, type ServerSite } from './server-site.js';

describe('mailferry server refusals', { timeout: 180_000 }, () => {
  let site: ServerSite;
  let tlsServer: ServerProcess;
  let plainServer: ServerProcess;
  let certServer: ServerProcess;
  let templateRoot: string;
  const secret = () => readFileSync(site.secretFile).subarray(0, -1);

  before(async () => {
    site = makeServerSite(['alice']);
    // The template's root belongs to the mail uid, as /srv/mail would to vmail.
    templateRoot = join(site.dir, 'tsrv');
    mkdirSync(templateRoot);
    if (ROOT) chownSync(templateRoot, NOBODY, NOBODY);
    // No back-off here: this file fails on purpose, many times, from one address.
    const quiet = ['server_auth_failures=0'];
    [tlsServer, plainServer, certServer] = await Promise.all([
      startServer(site.serverArgs, { settings: [...site.serverSettings, ...quiet] }),
      startServer(['--listen', '127.0.0.1:0', '--allow-plaintext', '--secret-file', site.secretFile, `maildir:${templateRoot}/%u/Maildir:LAYOUT=fs`], { settings: [...quiet, 'mail_uid=65534', 'first_valid_uid=0'] }),
      startServer(['--listen', '127.0.0.1:0', '--tls-cert', site.certs.serverCert, '--tls-key', site.certs.serverKey, '--client-ca', site.certs.ca, `maildir:${templateRoot}/%u/Maildir:LAYOUT=fs`], { settings: [...quiet, 'mail_uid=65534', 'first_valid_uid=0'] }),
    ]);
    await fill(site, site.local('src'), corpusMessages(12));
  });
  after(async () => {
    await Promise.all([tlsServer?.stop(), plainServer?.stop(), certServer?.stop()]);
    for (const s of [tlsServer, plainServer, certServer]) {
      const log = s?.lines.map((l) => l.text).join('\n') ?? '';
      assert.ok(!log.includes(secret().toString()), 'the secret is never logged');
    }
    site?.cleanup();
  });

  /** A backup of the site's client Maildir to `to`, with extra -o settings. */
  const backup = (to: string, settings = site.clientSettings, env?: NodeJS.ProcessEnv) => mf(['backup', site.local('src'), to], { settings, env });

  /** Waits for a session line of `s` after its first `from` lines that matches `re` (another connection's line may come first). */
  async function logged(s: ServerProcess, from: number, re: RegExp): Promise<void> {
    await s.waitForLine(new RegExp(`^mailferry server: session \\d+ .*${re.source}`), { from, timeoutMs: 10_000 });
  }

  it('a wrong secret: 77 on one line; the server logs the failure and counts it', async () => {
    const wrong = join(site.dir, 'wrong-secret');
    writeFileSync(wrong, 'this is not the secret of the site\n', { mode: 0o600 });
    const mark = tlsServer.lines.length;
    const r = await backup(site.tcps(tlsServer.port, 'alice'), [`server_secret_file=${wrong}`]);
    assert.equal(r.code, 77, r.stderr);
    assert.deepEqual(errorLines(r), [`mailferry: error: server tcps:127.0.0.1:${tlsServer.port}: authentication failed`]);
    await logged(tlsServer, mark, /tls=TLSv1\.3 user=alice result="refused: authentication failed: wrong secret" auth_failures=\d+ auth_failures_total=\d+ /);
  });

  it('no secret: 77, saying how to give one; MAILFERRY_SECRET gives one', async () => {
    const mark = tlsServer.lines.length;
    let r = await backup(site.tcps(tlsServer.port, 'alice'), []);
    assert.equal(r.code, 77, r.stderr);
    assert.deepEqual(errorLines(r), [`mailferry: error: server tcps:127.0.0.1:${tlsServer.port}: authentication failed (this client has no secret: set server_secret_file or MAILFERRY_SECRET)`]);
    await logged(tlsServer, mark, /result="refused: authentication failed: the client gave no secret"/);
    r = await backup(site.tcps(tlsServer.port, 'alice'), [], { MAILFERRY_SECRET: secret().toString() });
    assert.equal(r.code, 0, r.stderr);
    r = await backup(site.tcps(tlsServer.port, 'alice'), [], { MAILFERRY_SECRET: 'short' });
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /MAILFERRY_SECRET is only 5 bytes/);
  });

  it("a server certificate the client cannot trust: 78, before anything is sent", async () => {
    const mark = tlsServer.lines.length;
    let r = await backup(site.tcps(tlsServer.port, 'alice', `cafile=${site.certs.rogueCa}`));
    assert.equal(r.code, 78, r.stderr);
    assert.deepEqual(errorLines(r), [
      `mailferry: error: server tcps:127.0.0.1:${tlsServer.port}: the server's certificate is not trusted: unable to verify the first certificate (checked against the system's CAs and ${site.certs.rogueCa})`,
    ]);
    r = await backup(site.tcps(tlsServer.port, 'alice', ''));
    assert.equal(r.code, 78, r.stderr);
    assert.match(errorLines(r)[0]!, /not trusted: .*: give the CA that signed it with \?cafile=FILE$/);
    await logged(tlsServer, mark, /result="refused: (closed during the TLS handshake|TLS handshake failed.*)"/);
  });

  it('plaintext to a TLS-only server, and TLS to a plaintext-only one: 78 naming the other scheme', async () => {
    let mark = tlsServer.lines.length;
    let r = await backup(`tcp:alice@127.0.0.1:${tlsServer.port}`);
    assert.equal(r.code, 78, r.stderr);
    assert.deepEqual(errorLines(r), [`mailferry: error: server tcp:127.0.0.1:${tlsServer.port}: this server speaks TLS only: use tcps:`]);
    await logged(tlsServer, mark, /tls=none result="refused: plaintext, to a TLS-only server"/);
    mark = plainServer.lines.length;
    r = await backup(site.tcps(plainServer.port, 'alice'));
    assert.equal(r.code, 78, r.stderr);
    assert.deepEqual(errorLines(r), [`mailferry: error: server tcps:127.0.0.1:${plainServer.port}: the server does not speak TLS there (a plaintext server is reached with tcp:)`]);
    await logged(plainServer, mark, /result="refused: TLS, to a plaintext-only server"/);
    r = await backup(`tcp:plainuser@127.0.0.1:${plainServer.port}`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readdirSync(join(templateRoot, 'plainuser', 'Maildir', 'cur')).length > 0);
  });

  it('an unknown user: 67; the log names the user', async () => {
    const mark = tlsServer.lines.length;
    const r = await backup(site.tcps(tlsServer.port, 'mallory'));
    assert.equal(r.code, 67, r.stderr);
    assert.deepEqual(errorLines(r), [`mailferry: error: server tcps:127.0.0.1:${tlsServer.port}: unknown user mallory`]);
    await logged(tlsServer, mark, /auth=secret user=mallory result="refused: unknown user mallory"/);
  });

  it('user names that are no path component are refused (65) before any path is built; nothing appears outside the root', async () => {
    const before = { dir: readdirSync(site.dir).sort(), srv: readdirSync(templateRoot).sort() };
    for (const [who, shown] of [['../x', '"../x"'], ['..%2F..%2Fetc', '"../../etc"'], ['a%2Fb', '"a/b"'], ['..', '..']] as const) {
      for (const s of [tlsServer, plainServer]) {
        const mark = s.lines.length;
        const to = s === tlsServer ? site.tcps(s.port, who) : `tcp:${who}@127.0.0.1:${s.port}`;
        const r = await backup(to);
        assert.equal(r.code, 65, `${who}: ${r.stderr}`);
        assert.match(errorLines(r)[0]!, new RegExp(`: user name ${shown.replace(/[.]/g, '\\.')} (contains '/'|is '\\.\\.'): refused$`));
        assert.equal(errorLines(r).length, 1);
        await logged(s, mark, /result="refused: user name /);
      }
    }
    // What the CLI cannot send: NUL, empty, too long, control characters.
    for (const name of ['a\0b', '', 'x'.repeat(256), 'a\nb']) {
      const sock = await rawConnect(plainServer.port);
      const ex = await authenticate(sock, name, secret());
      sock.destroy();
      assert.equal(ex.result.ok, false);
      assert.equal(!ex.result.ok && ex.result.kind, 'data', JSON.stringify(name));
    }
    assert.deepEqual({ dir: readdirSync(site.dir).sort(), srv: readdirSync(templateRoot).sort() }, before);
  });

  it('a recorded authentication replayed fails, and so does a response made for another TLS channel', async () => {
    const sock = await rawConnect(plainServer.port);
    const good = await authenticate(sock, 'replayed', secret());
    assert.equal(good.result.ok, true);
    sock.destroy();
    // The same bytes again: the server's new nonce makes the recorded MAC worthless.
    const mark = plainServer.lines.length;
    const again = await rawConnect(plainServer.port);
    const { LineReader } = await import('../../src/remote/auth-lines.js');
    const reader = new LineReader(again, 4096);
    again.write(Buffer.concat(good.sent));
    const challenge = JSON.parse((await reader.next(5000)).toString()) as { nonce: string };
    assert.notEqual(challenge.nonce, good.serverNonce!.toString('hex'));
    assert.deepEqual(JSON.parse((await reader.next(5000)).toString()), { ok: false, kind: 'permission', error: 'authentication failed' });
    again.destroy();
    await logged(plainServer, mark, /user=replayed result="refused: authentication failed: wrong secret"/);

    // A man in the middle relays a victim's response from the victim's TLS channel into his own.
    const victimChannel = await rawConnect(tlsServer.port, { ca: site.certs.ca });
    const victimBinding = bindingOf(victimChannel);
    victimChannel.destroy();
    const attacker = await rawConnect(tlsServer.port, { ca: site.certs.ca });
    const relayed = await authenticate(attacker, 'alice', secret(), { binding: victimBinding });
    attacker.destroy();
    assert.deepEqual(relayed.result, { ok: false, kind: 'permission', error: 'authentication failed' });
  });

  it('client certificates: one the client CA issued authenticates alone; a rogue one or none does not', async () => {
    const certQuery = `cafile=${site.certs.ca}&cert=${site.certs.clientCert}&key=${site.certs.clientKey}`;
    let mark = certServer.lines.length;
    let r = await backup(site.tcps(certServer.port, 'certuser', certQuery), []);
    assert.equal(r.code, 0, r.stderr);
    await logged(certServer, mark, /auth="cert CN=backup-host\.example" user=certuser wait=[0-9.]+s result=ok /);
    mark = certServer.lines.length;
    r = await backup(site.tcps(certServer.port, 'certuser', `cafile=${site.certs.ca}&cert=${site.certs.rogueClientCert}&key=${site.certs.rogueClientKey}`), []);
    assert.equal(r.code, 77, r.stderr);
    await logged(certServer, mark, /result="refused: authentication failed: the client gave no secret and no valid certificate"/);
    r = await backup(site.tcps(certServer.port, 'certuser'), []);
    assert.equal(r.code, 77, r.stderr);
    // A secret the server does not have is no way in either.
    r = await backup(site.tcps(certServer.port, 'certuser'));
    assert.equal(r.code, 77, r.stderr);
  });

  it('startup mistakes: plaintext off loopback, no certificate, half a key pair, missing files, nobody able to authenticate', async () => {
    const start = (args: string[]) => mf(['server', ...args], { settings: site.serverSettings });
    const t = ['maildir:/nonexistent/%u'];
    const cases: [string[], number, RegExp][] = [
      [['--listen', '0.0.0.0:0', '--allow-plaintext', '--secret-file', site.secretFile, ...t], 64, /--allow-plaintext serves only loopback addresses, and 0\.0\.0\.0 is not one/],
      [['--listen', '127.0.0.1:0', '--secret-file', site.secretFile, ...t], 64, /needs a certificate \(--tls-cert FILE --tls-key FILE/],
      [['--listen', '127.0.0.1:0', '--tls-cert', site.certs.serverCert, '--secret-file', site.secretFile, ...t], 64, /--tls-cert and --tls-key go together/],
      [['--listen', '127.0.0.1:0', '--tls-cert', site.certs.serverCert, '--tls-key', site.certs.serverKey, ...t], 78, /no client could authenticate/],
      [['--listen', '127.0.0.1:0', '--tls-cert', site.certs.serverCert, '--tls-key', site.certs.serverKey, '--secret-file', join(site.dir, 'nope'), ...t], 78, /secret file .*nope: no such file/],
      [['--listen', '127.0.0.1:0', '--tls-cert', site.certs.serverCert, '--tls-key', site.certs.clientKey, '--secret-file', site.secretFile, ...t], 78, /TLS certificate .* and key .*client\.key/],
      [['--listen', '127.0.0.1:99999', '--allow-plaintext', '--secret-file', site.secretFile, ...t], 64, /invalid --listen '127\.0\.0\.1:99999'/],
      [['--listen', `127.0.0.1:${tlsServer.port}`, '--allow-plaintext', '--secret-file', site.secretFile, ...t], 75, /cannot listen on 127\.0\.0\.1:\d+: the address is in use/],
    ];
    const runs = await Promise.all(cases.map(([args]) => start(args)));
    runs.forEach((r, i) => {
      const [args, code, re] = cases[i]!;
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(errorLines(r).length, 1, r.stderr);
      assert.match(errorLines(r)[0]!, re);
    });
  });
});
