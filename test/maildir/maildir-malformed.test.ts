/**
 * Maildir content a scan cannot fully make sense of: odd file names, cut or lying uidlists,
 * duplicate base names, garbage keyword files, a corrupt change index, stale and live locks.
 * Each is handled as Dovecot handles it, with a warning naming the file, and nothing is ever
 * deleted because it was not understood.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MailferryError } from '../../src/model/errors.js';
import { MaildirStore, type MaildirStoreOptions } from '../../src/storage/maildir/maildir-store.js';
import { nextUidOf, parseUidlist } from '../../src/storage/maildir/uidlist.js';
import { cleanStaleTmp } from '../../src/storage/maildir/mailbox-files.js';
import type { MailboxName } from '../../src/storage/store.js';
import { message, readAll, req } from '../contract/store-contract.js';

const INBOX: MailboxName = ['INBOX'];

/** What a uidlist says, header staleness aside (Dovecot appends entries without touching N). */
function parsed(pathOrText: string) {
  const text = pathOrText.startsWith('/') ? readFileSync(pathOrText, 'utf8') : pathOrText;
  const { uidlist } = parseUidlist(text, 'dovecot-uidlist');
  return { guid: uidlist.mailboxGuid, uidValidity: uidlist.uidValidity, next: nextUidOf(uidlist), entries: uidlist.entries };
}

interface Env {
  dir: string;
  root: string;
  store: MaildirStore;
  warnings: string[];
  /** Warnings that mention `text`. */
  warned(text: string): string[];
}

async function withMaildir(fn: (env: Env) => Promise<void>, options: MaildirStoreOptions = {}): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-bad-'));
  const root = join(dir, 'Maildir');
  const warnings: string[] = [];
  const store = MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, ...options, warn: (m) => warnings.push(m) });
  const env: Env = { dir, root, store, warnings, warned: (text) => warnings.filter((w) => w.includes(text)) };
  try {
    await fn(env);
  } finally {
    await env.store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const isKind = (kind: string, ...texts: string[]) => (e: unknown) =>
  e instanceof MailferryError && e.kind === kind && texts.every((t) => e.message.includes(t));

/** uid -> body of every message, read through the store. */
async function bodies(store: MaildirStore, name: MailboxName = INBOX): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const m of (await store.getMessages(name)).messages) out.set(m.uid, (await readAll(await store.openMessage(name, m.uid))).toString());
  return out;
}

/** Every file under `dir` with its content, except the change index. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const path = join(e.parentPath, e.name);
    if (e.isFile() && !e.name.startsWith('mailferry.index')) out[path] = `${statSync(path).mtimeMs}:${readFileSync(path, 'latin1')}`;
  }
  return out;
}

describe('maildir: malformed and unexpected content', () => {
  it('garbage file names in cur/ get UIDs, are readable, and unknown flag letters survive flag updates', () =>
    withMaildir(async ({ root, store }) => {
      const names = ['foo', 'a:b:c', 'weird name with spaces', 'x:2,ZZ'];
      for (const n of names) writeFileSync(join(root, 'cur', n), message(`body of ${n}`));
      const all = await store.getMessages(INBOX);
      const guids = ['foo', 'a', 'weird name with spaces', 'x'];
      assert.deepEqual(all.messages.map((m) => m.guid).sort(), [...guids].sort());
      assert.deepEqual(all.messages.map((m) => m.uid), [1, 2, 3, 4]);
      const byGuid = new Map(all.messages.map((m) => [m.guid, m]));
      for (const [i, g] of guids.entries()) {
        assert.deepEqual(await readAll(await store.openMessage(INBOX, byGuid.get(g)!.uid)), message(`body of ${names[i]}`));
      }
      assert.deepEqual(byGuid.get('x')!.flags, []);

      const x = byGuid.get('x')!.uid;
      await store.updateFlags(INBOX, [{ uid: x, flags: ['\\Seen'], keywords: [] }]);
      assert.ok(existsSync(join(root, 'cur/x:2,SZ')), `Z kept: ${readdirSync(join(root, 'cur'))}`);
      await store.updateFlags(INBOX, [{ uid: x, flags: [], keywords: [] }]);
      assert.ok(existsSync(join(root, 'cur/x:2,Z')));
      for (const n of ['foo', 'a:b:c', 'weird name with spaces']) {
        await store.updateFlags(INBOX, [{ uid: byGuid.get(n.split(':')[0]!)!.uid, flags: ['\\Flagged'], keywords: [] }]);
      }
      const after = await store.getMessages(INBOX);
      assert.deepEqual(after.messages.map((m) => [m.uid, m.guid, m.flags.length]), all.messages.map((m) => [m.uid, m.guid, m.guid === 'x' ? 0 : 1]));
      for (const [i, g] of guids.entries()) {
        assert.deepEqual(await readAll(await store.openMessage(INBOX, byGuid.get(g)!.uid)), message(`body of ${names[i]}`));
      }
    }));

  it('files starting with "." in cur/ are ignored and left alone', () =>
    withMaildir(async ({ root, store }) => {
      writeFileSync(join(root, 'cur', '.hidden'), 'not mail');
      writeFileSync(join(root, 'cur', '.1700000000.M1P1.x:2,S'), 'half-written by someone');
      const [saved] = await store.saveMessages(INBOX, [req(message('real'))]);
      const all = await store.getMessages(INBOX);
      assert.deepEqual(all.messages.map((m) => m.uid), [saved!.uid]);
      await store.expunge(INBOX, [saved!.uid]);
      assert.deepEqual((await store.getMessages(INBOX)).messages, []);
      assert.equal(readFileSync(join(root, 'cur', '.hidden'), 'utf8'), 'not mail');
      assert.equal(readFileSync(join(root, 'cur', '.1700000000.M1P1.x:2,S'), 'utf8'), 'half-written by someone');
      assert.doesNotMatch(readFileSync(join(root, 'dovecot-uidlist'), 'utf8'), /hidden|1700000000/);
    }));

  it('a uidlist whose last line was cut keeps the readable UIDs and loses no message', () =>
    withMaildir(async ({ root, store, warned }) => {
      await store.saveMessages(INBOX, [req(message('1'), { guid: 'm1' }), req(message('2'), { guid: 'm2' }), req(message('3'), { guid: 'm3' })]);
      const path = join(root, 'dovecot-uidlist');
      const text = readFileSync(path, 'utf8');
      assert.ok(text.endsWith('3 :m3\n'));
      writeFileSync(path, text.slice(0, -3)); // "3 :m"
      writeFileSync(join(root, 'new', '1700000000.M1P1.mx'), message('delivered meanwhile'));
      const all = await store.getMessages(INBOX);
      assert.ok(warned(path).some((w) => /terminating newline/.test(w)), 'the warning names the uidlist');
      const uid = new Map(all.messages.map((m) => [m.guid, m.uid]));
      assert.equal(uid.get('m1'), 1);
      assert.equal(uid.get('m2'), 2);
      // The cut entry gets a new UID, as Dovecot gives it; UID 3 is never handed to other mail.
      assert.ok(uid.get('m3')! >= 4, `m3 has UID ${uid.get('m3')}`);
      assert.ok(uid.get('1700000000.M1P1.mx')! >= 4, `the delivery has UID ${uid.get('1700000000.M1P1.mx')}`);
      assert.equal(all.messages.length, 4);
      assert.deepEqual(await readAll(await store.openMessage(INBOX, uid.get('m3')!)), message('3'));
      assert.deepEqual(parsed(path).entries.map((e) => [e.uid, e.basename]), all.messages.map((m) => [m.uid, m.guid]));
    }));

  it('a uidlist cut inside its header, empty or deleted is rebuilt from the index with its UIDs', () =>
    withMaildir(async ({ root, store, warned }) => {
      await store.saveMessages(INBOX, [req(message('1'), { guid: 'm1', uid: 3 }), req(message('2'), { guid: 'm2', uid: 9 })]);
      const path = join(root, 'dovecot-uidlist');
      const full = readFileSync(path, 'utf8');
      const header = full.slice(0, full.indexOf('\n'));
      const before = await store.mailboxStatus(INBOX);
      const cuts = {
        'inside V': header.slice(0, 6),
        'before G': header.slice(0, header.indexOf(' G')),
        'inside G': header.slice(0, -5),
        'whole header, no newline': header,
        empty: '',
      };
      for (const [what, text] of [...Object.entries(cuts), ['deleted', undefined] as const]) {
        if (text === undefined) unlinkSync(path);
        else writeFileSync(path, text);
        const warnedBefore = warned(path).length;
        const status = await store.mailboxStatus(INBOX);
        assert.deepEqual(
          [status?.guid, status?.uidValidity, status?.uidNext, status?.messages],
          [before!.guid, before!.uidValidity, 10, 2],
          `uidlist ${what}`,
        );
        assert.deepEqual(
          (await store.getMessages(INBOX)).messages.map((m) => [m.uid, m.guid]),
          [[3, 'm1'], [9, 'm2']],
          `uidlist ${what}`,
        );
        if (text !== undefined) assert.ok(warned(path).length > warnedBefore, `warning names the uidlist (${what})`);
        assert.deepEqual(parsed(path), parsed(full), `uidlist ${what} written back with the same content`);
      }
    }));

  it('a cut uidlist the index does not know still loses no message', () =>
    withMaildir(async ({ root, store, warned }) => {
      // A folder some other program made, never seen by this index, with a uidlist cut short.
      const dir = join(root, '.F');
      for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
      writeFileSync(join(dir, 'cur', 'a:2,S'), message('a'));
      writeFileSync(join(dir, 'new', 'b'), message('b'));
      writeFileSync(join(dir, 'dovecot-uidlist'), '3 V12');
      const list = await store.listMailboxes();
      const f = list.mailboxes.find((m) => m.name[0] === 'F');
      assert.equal(f?.messages, 2);
      assert.match(f!.guid, /^[0-9a-f]{32}$/);
      const b = await bodies(store, ['F']);
      assert.deepEqual([...b.values()].sort(), [message('a').toString(), message('b').toString()]);
      assert.ok(warned(join(dir, 'dovecot-uidlist')).some((w) => /cut short|rebuild/.test(w)));
      assert.deepEqual(parsed(join(dir, 'dovecot-uidlist')).entries.map((e) => e.basename).sort(), ['a', 'b']);
    }));

  it('a uidlist entry without a file (as Dovecot leaves after an expunge) is not listed, is expunged when the index had it, and is cleaned up at the next rewrite', () =>
    withMaildir(async ({ root, store, warned }) => {
      await store.saveMessages(INBOX, [req(message('1'), { guid: 'm1' }), req(message('2'), { guid: 'm2', flags: ['\\Seen'] })]);
      const before = await store.getMessages(INBOX);
      const path = join(root, 'dovecot-uidlist');
      writeFileSync(path, readFileSync(path, 'utf8').replace(/ N3 /, ' N4 ') + '3 :ghost.file\n');
      unlinkSync(join(root, 'cur/m2:2,S'));
      const after = await store.getMessages(INBOX, before.highestModseq);
      assert.deepEqual(warned('ghost.file'), [], 'an ordinary state for Dovecot: no warning');
      assert.deepEqual(after.messages, []);
      assert.deepEqual(after.expunged.map((e) => [e.uid, e.guid]), [[2, 'm2']]);
      assert.deepEqual((await store.getMessages(INBOX)).messages.map((m) => m.uid), [1]);
      assert.equal(after.uidNext, 4);
      // Reading writes nothing (the source of a backup is only read); the next rewrite cleans up.
      assert.match(readFileSync(path, 'utf8'), /ghost/);
      writeFileSync(join(root, 'new', 'm3'), message('3'));
      assert.deepEqual((await store.getMessages(INBOX)).messages.map((m) => m.uid), [1, 4]);
      assert.doesNotMatch(readFileSync(path, 'utf8'), /ghost/);
    }));

  it('duplicate base names: the known copy keeps its UID, the other is renamed apart and gets its own', () =>
    withMaildir(async ({ root, store, warned }) => {
      const [m1, m2] = await store.saveMessages(INBOX, [req(message('original 1'), { guid: 'm1' }), req(message('original 2'), { guid: 'm2', flags: ['\\Seen'] })]);
      const before = await store.getMessages(INBOX);
      writeFileSync(join(root, 'new', 'm1'), message('copy in new'));
      writeFileSync(join(root, 'cur', 'm2:2,F'), message('copy with other flags'));
      const after = await store.getMessages(INBOX);
      assert.equal(after.messages.length, 4);
      assert.equal(new Set(after.messages.map((m) => m.uid)).size, 4);
      assert.equal(new Set(after.messages.map((m) => m.guid)).size, 4);
      assert.ok(warned(join(root, 'new', 'm1')).length === 1, `warns naming new/m1: ${warned('duplicate')}`);
      assert.ok(warned(join(root, 'cur', 'm2:2,F')).length === 1, `warns naming cur/m2:2,F: ${warned('duplicate')}`);
      // A UID's body never changes under a client that cached it.
      const b = await bodies(store);
      assert.equal(b.get(m1!.uid), message('original 1').toString());
      assert.equal(b.get(m2!.uid), message('original 2').toString());
      const fresh = after.messages.filter((m) => m.uid >= before.uidNext);
      assert.deepEqual(fresh.map((m) => b.get(m.uid)).sort(), [message('copy in new').toString(), message('copy with other flags').toString()].sort());
      assert.deepEqual(after.messages.find((m) => m.uid === m2!.uid)!.flags, ['\\Seen']);
      assert.deepEqual(fresh.find((m) => b.get(m.uid) === message('copy with other flags').toString())!.flags, ['\\Flagged']);
      assert.equal(readdirSync(join(root, 'cur')).length + readdirSync(join(root, 'new')).length, 4, 'nothing deleted');
    }));

  it('duplicate base names nobody knew yet: both kept with their own UIDs and bodies', () =>
    withMaildir(async ({ root, store, warned }) => {
      writeFileSync(join(root, 'cur', 'd1:2,S'), message('first'));
      writeFileSync(join(root, 'cur', 'd1:2,F'), message('second'));
      writeFileSync(join(root, 'new', 'd2'), message('third'));
      writeFileSync(join(root, 'cur', 'd2:2,'), message('fourth'));
      const b = await bodies(store);
      assert.deepEqual([...b.keys()], [1, 2, 3, 4]);
      assert.deepEqual([...b.values()].sort(), ['first', 'second', 'third', 'fourth'].map((s) => message(s).toString()).sort());
      assert.equal(warned('duplicate').length, 2);
      assert.ok(warned('duplicate').every((w) => w.startsWith(join(root, 'cur', 'd1:2,')) || w.startsWith(join(root, 'new', 'd2')) || w.startsWith(join(root, 'cur', 'd2'))));
      assert.deepEqual((await bodies(store)), b, 'stable on the next scan');
    }));

  it('a corrupt change index stops open with a data error naming it and the way out; mail is untouched', () =>
    withMaildir(async ({ root, store }) => {
      await store.saveMessages(INBOX, [req(message('keep'), { uid: 4 })]);
      await store.close();
      const index = join(root, 'mailferry.index.sqlite');
      writeFileSync(index, Buffer.alloc(8192, 'garbage!'));
      const files = snapshot(root);
      const open = () => MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
      assert.throws(open, isKind('data', index, 'move it aside'));
      assert.deepEqual(snapshot(root), files);
      // Following the advice works and keeps the UID.
      for (const f of readdirSync(root).filter((x) => x.startsWith('mailferry.index'))) rmSync(join(root, f));
      const again = open();
      try {
        assert.deepEqual((await again.getMessages(INBOX)).messages.map((m) => m.uid), [4]);
      } finally {
        await again.close();
      }
    }));

  it('garbage lines in dovecot-keywords are warned about; the other keywords still map', () =>
    withMaildir(async ({ root, store, warned }) => {
      const path = join(root, 'dovecot-keywords');
      writeFileSync(path, '0 alpha\ngarbage\n99 toobig\nxx yy\n2 \n1 beta\n3 gamma');
      writeFileSync(join(root, 'cur', 'k:2,Sab'), message('k'));
      const [m] = (await store.getMessages(INBOX)).messages;
      assert.deepEqual(m!.keywords.sort(), ['alpha', 'beta']);
      assert.deepEqual(m!.flags, ['\\Seen']);
      const w = warned(path);
      for (const line of ['garbage', 'toobig', 'xx yy', 'line 7: no terminating newline']) assert.ok(w.some((x) => x.includes(line)), `warns about ${line}`);
    }));

  it('a missing root is notfound naming it; a root that is a file is a clear error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-bad-'));
    try {
      const missing = join(dir, 'nope', 'Maildir');
      assert.throws(() => MaildirStore.open(parseMaildirLocation(`maildir:${missing}`), { warn: () => {} }), isKind('notfound', missing));
      assert.ok(!existsSync(missing), 'open without create creates nothing');
      const file = join(dir, 'file');
      writeFileSync(file, 'not a maildir');
      assert.throws(() => MaildirStore.open(parseMaildirLocation(`maildir:${file}`), { warn: () => {} }), isKind('data', file, 'not a directory'));
      assert.equal(readFileSync(file, 'utf8'), 'not a maildir');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it(
    'open with create on a root that is a file says "not a directory"',
    {},
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-bad-'));
      try {
        const file = join(dir, 'file');
        writeFileSync(file, 'not a maildir');
        assert.throws(() => MaildirStore.open(parseMaildirLocation(`maildir:${file}`), { create: true, warn: () => {} }), isKind('data', file, 'not a directory'));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it('a stale dovecot-uidlist.lock (dead pid on this host, or untouched for minutes) does not stop a save', () =>
    withMaildir(async ({ root, store }) => {
      await store.getMessages(INBOX);
      const lock = join(root, 'dovecot-uidlist.lock');
      let dead = 999999;
      while (isAlive(dead)) dead++;
      writeFileSync(lock, `${dead}:${hostname()}`);
      const [a] = await store.saveMessages(INBOX, [req(message('after dead lock'))]);
      assert.ok(!existsSync(lock));
      writeFileSync(lock, `1:some-other-host`);
      const old = Date.now() / 1000 - 180;
      utimesSync(lock, old, old);
      const [b] = await store.saveMessages(INBOX, [req(message('after old lock'))]);
      assert.deepEqual((await store.getMessages(INBOX)).messages.map((m) => m.uid), [a!.uid, b!.uid]);
      assert.ok(!existsSync(lock));
    }, { lockTimeoutSeconds: 1 }));

  it('a lock held by a live process makes a save wait, then fail with tempfail', () =>
    withMaildir(async ({ root, store }) => {
      await store.getMessages(INBOX);
      const lock = join(root, 'dovecot-uidlist.lock');
      const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        assert.ok(sleeper.pid);
        writeFileSync(lock, `${sleeper.pid}:${hostname()}`);
        const t0 = Date.now();
        await assert.rejects(store.saveMessages(INBOX, [req(message('blocked'))]), isKind('tempfail', lock));
        assert.ok(Date.now() - t0 >= 950, `waited ${Date.now() - t0} ms`);
        assert.equal(readFileSync(lock, 'utf8'), `${sleeper.pid}:${hostname()}`, 'a live lock is not stolen');
      } finally {
        sleeper.kill();
      }
    }, { lockTimeoutSeconds: 1 }));

  it(
    'a save that timed out on the lock leaves no message behind (a retry would duplicate it)',
    {},
    () =>
      withMaildir(async ({ root, store }) => {
        await store.getMessages(INBOX);
        const lock = join(root, 'dovecot-uidlist.lock');
        const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
        try {
          writeFileSync(lock, `${sleeper.pid}:${hostname()}`);
          await assert.rejects(store.saveMessages(INBOX, [req(message('blocked'))]), isKind('tempfail'));
        } finally {
          sleeper.kill();
        }
        rmSync(lock, { force: true });
        assert.deepEqual((await store.getMessages(INBOX)).messages, []);
      }, { lockTimeoutSeconds: 1 }),
  );

  it('dead deliveries in tmp/ older than 36 hours are removed; fresh ones and backdated saves are left alone', () =>
    withMaildir(async ({ root, store }) => {
      await store.saveMessages(INBOX, [req(message('kept'), { receivedDate: Date.UTC(2001, 0, 1) })]);
      writeFileSync(join(root, 'tmp', 'dead'), 'half a message');
      // A save in progress backdates its tmp file to the received date: its ctime still says it is fresh.
      const old = new Date(Date.now() - 37 * 3600 * 1000);
      utimesSync(join(root, 'tmp', 'dead'), old, old);
      cleanStaleTmp(root, () => {});
      assert.deepEqual(readdirSync(join(root, 'tmp')), ['dead']);
      cleanStaleTmp(root, () => {}, Date.now() + 37 * 3600 * 1000);
      assert.deepEqual(readdirSync(join(root, 'tmp')), []);
      assert.equal((await store.getMessages(INBOX)).messages.length, 1);
    }));
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
