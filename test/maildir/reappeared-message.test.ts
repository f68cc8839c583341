/**
 * A message file that comes back under the name of an expunged message, whose line an expunge
 * left in dovecot-uidlist (restored from a backup, moved out and back by a client), gets a new
 * UID, as Dovecot gives it ("Expunged message reappeared, giving a new UID"): the old UID was
 * reported expunged and never names a message again. doveadm, with its own index of the mailbox,
 * is the oracle. A line another program added since our last scan, the files a crashed save of
 * ours left, and a mailbox the change index does not know keep the UIDs their lines give them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, copyFileSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { doveadmFetch, grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';

const INBOX = ['INBOX'];

function openStore(root: string, warnings: string[] = []): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: (m) => warnings.push(m) });
}

async function withStore<T>(root: string, f: (s: MaildirStore) => Promise<T>, warnings?: string[]): Promise<T> {
  const s = openStore(root, warnings);
  try {
    return await f(s);
  } finally {
    await s.close();
  }
}

const uidsAndGuids = (root: string) => withStore(root, async (s) => (await s.getMessages(INBOX)).messages.map((m) => [m.uid, m.guid] as [number, string]));
const lines = (root: string) => readFileSync(join(root, 'dovecot-uidlist'), 'utf8').split('\n').slice(1, -1);

function fileOf(root: string, guid: string): string {
  const name = readdirSync(join(root, 'cur')).find((f) => f.startsWith(guid));
  assert.ok(name, guid);
  return join(root, 'cur', name);
}

describe('a message file back under the uidlist line of an expunged message', { timeout: 120_000 }, () => {
  let d: Dovecot;
  let scratch: string;
  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: false });
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-reappeared-'));
  });
  after(async () => {
    await d?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  /** Ten messages saved, seen by Dovecot, message 2 kept aside and expunged by us (its line stays); Dovecot sees the expunge. */
  async function expungedTwo(name: string, beforeExpunge: (root: string) => Promise<unknown> = async () => {}) {
    const root = join(scratch, name, 'Maildir');
    const saved = await withStore(root, (s) => s.saveMessages(INBOX, corpusMessages(10).map((m) => req(m))));
    await grantDovecotAccess(join(scratch, name));
    assert.deepEqual((await doveadmFetch(d, 'alice', `maildir:${root}`, 'INBOX')).map((m) => m.uid), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const kept = join(scratch, `${name}-kept`);
    copyFileSync(fileOf(root, saved[1]!.guid), kept);
    await beforeExpunge(root);
    await withStore(root, (s) => s.expunge(INBOX, [2]));
    await grantDovecotAccess(join(scratch, name));
    assert.deepEqual((await doveadmFetch(d, 'alice', `maildir:${root}`, 'INBOX')).map((m) => m.uid), [1, 3, 4, 5, 6, 7, 8, 9, 10]);
    const restore = () => copyFileSync(kept, join(root, 'cur', `${saved[1]!.guid}:2,S`));
    return { root, saved, restore };
  }

  it('gets the next UID, its line is moved there, every other line stays, and doveadm reads the same UIDs', async () => {
    const { root, saved, restore } = await expungedTwo('reappear');
    const before = lines(root);
    assert.ok(before.some((l) => l.startsWith('2 ')), 'the expunge left the line');
    restore();
    const warnings: string[] = [];
    const ours = await withStore(root, async (s) => {
      const got = await s.getMessages(INBOX);
      assert.deepEqual(got.expunged.filter((e) => e.uid === 11), []);
      return got.messages.map((m) => [m.uid, m.guid]);
    }, warnings);
    const expected = saved.map((m, i) => [i === 1 ? 11 : m.uid, m.guid]);
    expected.push(expected.splice(1, 1)[0]!);
    assert.deepEqual(ours, expected);
    assert.equal(warnings.filter((w) => w.includes('reappeared') && w.includes('old UID 2') && w.includes('UID 11 now')).length, 1, warnings.join('\n'));
    const after = lines(root);
    assert.deepEqual(after.slice(0, -1), before.filter((l) => !l.startsWith('2 ')));
    assert.equal(after.at(-1), `11 :${saved[1]!.guid}`);
    assert.match(readFileSync(join(root, 'dovecot-uidlist'), 'utf8').split('\n')[0]!, / N12 /);
    await grantDovecotAccess(join(scratch, 'reappear'));
    assert.deepEqual((await doveadmFetch(d, 'alice', `maildir:${root}`, 'INBOX')).map((m) => [m.uid, m.guid]), expected);
    const log = readFileSync(join(d.root, 'dovecot.log'), 'utf8');
    assert.doesNotMatch(log, /reappeared|Duplicate|corrupt/i);
    // Read again: nothing moves.
    assert.deepEqual(await uidsAndGuids(root), expected);
  });

  it('a backup after it saves the message once at its new UID and rebuilds nothing; a sync after it too', async () => {
    const a = join(scratch, 'backup', 'Maildir');
    const b = join(scratch, 'backup-dest');
    const c = join(scratch, 'sync-peer');
    const backup = () => withStore(a, (sa) => withStore(b, (sb) => runBackup(sa, sb)));
    const sync = () => withStore(a, (sa) => withStore(c, (sc) => runSync(sa, sc)));
    // Both copies are made while message 2 is there, then take its expunge.
    const { saved, restore } = await expungedTwo('backup', async () => {
      await backup();
      await sync();
    });
    await backup();
    await sync();
    assert.deepEqual((await uidsAndGuids(c)).map(([u]) => u), [1, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual((await uidsAndGuids(b)).map(([u]) => u), [1, 3, 4, 5, 6, 7, 8, 9, 10]);
    restore();
    const r = await backup();
    assert.equal(r.rebuilt, 0);
    assert.equal(r.saved, 1);
    assert.equal(r.expunged, 0);
    const onA = await uidsAndGuids(a);
    assert.deepEqual(await uidsAndGuids(b), onA);
    assert.deepEqual(onA.find(([, g]) => g === saved[1]!.guid), [11, saved[1]!.guid]);
    const s1 = await sync();
    assert.equal(s1.changedDuringSync, false);
    const onC = await uidsAndGuids(c);
    assert.deepEqual(onC.map(([, g]) => g).sort(), onA.map(([, g]) => g).sort());
    assert.equal(onC.filter(([, g]) => g === saved[1]!.guid).length, 1);
    assert.ok(!onC.some(([u]) => u === 2), `UID 2 given again: ${JSON.stringify(onC)}`);
    await grantDovecotAccess(join(scratch, 'backup'));
    assert.deepEqual((await doveadmFetch(d, 'alice', `maildir:${a}`, 'INBOX')).map((m) => [m.uid, m.guid]), onA);
    // Nothing left to do either way.
    const r2 = await backup();
    assert.equal(r2.saved + r2.expunged + r2.rebuilt, 0);
    assert.deepEqual(await uidsAndGuids(a), onA);
  });

  it('a scan that writes the uidlist whole (a duplicate file name to rename apart) gives it a new UID too', async () => {
    const { root, saved, restore } = await expungedTwo('repair');
    restore();
    // The same message delivered again under the name of message 3: renamed apart, it is new mail.
    copyFileSync(fileOf(root, saved[2]!.guid), join(root, 'new', saved[2]!.guid));
    const warnings: string[] = [];
    const got = await withStore(root, async (s) => (await s.getMessages(INBOX)).messages.map((m) => [m.uid, m.guid]), warnings);
    assert.ok(warnings.some((w) => w.includes('duplicate message basename')), warnings.join('\n'));
    assert.ok(warnings.some((w) => w.includes('reappeared') && w.includes('old UID 2')), warnings.join('\n'));
    const renamed = got.find(([u]) => u === 11);
    assert.ok(renamed && renamed[1] !== saved[2]!.guid, JSON.stringify(got));
    assert.deepEqual(got.at(-1), [12, saved[1]!.guid]);
    assert.equal(got.length, 11);
    assert.ok(!got.some(([u]) => u === 2));
    await grantDovecotAccess(join(scratch, 'repair'));
    assert.deepEqual((await doveadmFetch(d, 'alice', `maildir:${root}`, 'INBOX')).map((m) => [m.uid, m.guid]), got);
  });

  it('a line another program added since our last scan is new mail at its own UID', async () => {
    const root = join(scratch, 'other', 'Maildir');
    const mail = corpusMessages(4);
    await withStore(root, (s) => s.saveMessages(INBOX, mail.slice(0, 3).map((m) => req(m))));
    // Dovecot's delivery: the file, then its line at the next UID, without raising the header's N.
    writeFileSync(join(root, 'cur', '1700000200.M1P7.mx:2,'), mail[3]!);
    appendFileSync(join(root, 'dovecot-uidlist'), '4 :1700000200.M1P7.mx\n');
    const warnings: string[] = [];
    const got = await withStore(root, async (s) => (await s.getMessages(INBOX)).messages.map((m) => m.uid), warnings);
    assert.deepEqual(got, [1, 2, 3, 4]);
    assert.deepEqual(warnings.filter((w) => w.includes('reappeared')), []);
    assert.equal(lines(root).at(-1), '4 :1700000200.M1P7.mx');
  });

  it('a new file renamed between the listing and its stat keeps its UID: its row is made from where it went', async () => {
    const root = join(scratch, 'renamed', 'Maildir');
    const mail = corpusMessages(4);
    await withStore(root, (s) => s.saveMessages(INBOX, mail.slice(0, 3).map((m) => req(m))));
    writeFileSync(join(root, 'new', '1700000300.M1P5.mx'), mail[3]!);
    // The uidlist's lock is held while the scan lists the directories: the client moves the new
    // file to cur/ and flags it meanwhile, after the listing and before the scan stats it.
    const lock = join(root, 'dovecot-uidlist.lock');
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    const warnings: string[] = [];
    const store = openStore(root, warnings);
    try {
      writeFileSync(lock, `${sleeper.pid}:${hostname()}`);
      const reading = store.getMessages(INBOX);
      await new Promise((r) => setTimeout(r, 300));
      renameSync(join(root, 'new', '1700000300.M1P5.mx'), join(root, 'cur', '1700000300.M1P5.mx:2,S'));
      rmSync(lock);
      const got = await reading;
      assert.deepEqual(got.messages.map((m) => [m.uid, m.guid, m.flags]).at(-1), [4, '1700000300.M1P5.mx', ['\\Seen']]);
    } finally {
      sleeper.kill();
      await store.close();
    }
    assert.equal(lines(root).at(-1), '4 :1700000300.M1P5.mx');
    const again = await withStore(root, async (s) => (await s.getMessages(INBOX)).messages.map((m) => m.uid), warnings);
    assert.deepEqual(again, [1, 2, 3, 4]);
    assert.deepEqual(warnings.filter((w) => w.includes('reappeared')), []);
  });

  it('with the change index lost, the file keeps the UID its line gives it, as a Dovecot without an index reads it', async () => {
    const root = join(scratch, 'lost', 'Maildir');
    const saved = await withStore(root, (s) => s.saveMessages(INBOX, corpusMessages(10).map((m) => req(m))));
    const kept = join(scratch, 'lost-kept');
    copyFileSync(fileOf(root, saved[1]!.guid), kept);
    await withStore(root, (s) => s.expunge(INBOX, [2]));
    assert.ok(lines(root).some((l) => l.startsWith('2 ')));
    for (const f of readdirSync(root).filter((x) => x.startsWith('mailferry.index.sqlite'))) rmSync(join(root, f));
    copyFileSync(kept, join(root, 'cur', `${saved[1]!.guid}:2,S`));
    assert.deepEqual(await uidsAndGuids(root), saved.map((m) => [m.uid, m.guid]));
    await grantDovecotAccess(join(scratch, 'lost'));
    assert.deepEqual((await doveadmFetch(d, 'alice', `maildir:${root}`, 'INBOX')).map((m) => [m.uid, m.guid]), saved.map((m) => [m.uid, m.guid]));
  });
});
