/**
 * A scan of a changed mailbox whose dovecot-uidlist is the very file the last scan read (same
 * mtime and inode, written more than two seconds before that scan) takes the lines from the
 * index's rows instead of reading the file: flag changes and removals cost no uidlist read.
 * New files still go by the real file, read under its lock before any line is written, so a
 * file that comes back under the old line of a message we expunged is found there and given a
 * new UID, as Dovecot gives it.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { doveadmFetch, grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';

const INBOX = ['INBOX'];

function openStore(location: string, warnings: string[] = []): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(location), { create: true, fsync: false, warn: (m) => warnings.push(m) });
}

/** Moves every mtime a scan's fingerprint looks at ten seconds back, as if the last change were that old. */
function age(dir: string): void {
  const then = (Date.now() - 10_000) / 1000;
  for (const name of ['new', 'cur', 'dovecot-uidlist', 'dovecot-keywords']) if (existsSync(join(dir, name))) utimesSync(join(dir, name), then, then);
}

function fileOf(dir: string, guid: string): string {
  const name = readdirSync(join(dir, 'cur')).find((f) => f.startsWith(guid));
  assert.ok(name, guid);
  return join(dir, 'cur', name);
}

describe('a scan that finds the uidlist as the last scan left it', { timeout: 120_000 }, () => {
  let d: Dovecot;
  let scratch: string;
  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: false });
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-scan-asindexed-'));
  });
  after(async () => {
    await d?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('flag changes and removals are read from the index without reading the uidlist', async () => {
    const root = join(scratch, 'flags', 'Maildir');
    const location = `maildir:${root}`;
    const warnings: string[] = [];
    const mail = corpusMessages(5);
    let store = openStore(location, warnings);
    let saved;
    try {
      saved = await store.saveMessages(INBOX, mail.map((m) => req(m)));
    } finally {
      await store.close();
    }
    age(root);
    // A run whose scan keeps the fingerprint: nothing changed since two seconds.
    store = openStore(location, warnings);
    try {
      await store.getMessages(INBOX);
    } finally {
      await store.close();
    }
    // A client flags one message and removes another.
    const one = fileOf(root, saved[0]!.guid);
    renameSync(one, one.replace(/:2,.*$/, ':2,FS'));
    unlinkSync(fileOf(root, saved[3]!.guid));
    // The uidlist changes in place, its mtime and inode kept: only a read of it could see this.
    const path = join(root, 'dovecot-uidlist');
    const st = statSync(path);
    const text = readFileSync(path, 'utf8');
    const lying = text.replace(`\n2 :${saved[1]!.guid}\n`, `\n2 :${saved[1]!.guid.replace(/^./, (c) => (c === '1' ? '2' : '1'))}\n`);
    assert.notEqual(lying, text);
    writeFileSync(path, lying);
    utimesSync(path, st.atime, st.mtime);
    store = openStore(location, warnings);
    try {
      const got = await store.getMessages(INBOX);
      assert.deepEqual(got.messages.map((m) => [m.uid, m.flags]), [[1, ['\\Flagged', '\\Seen']], [2, []], [3, []], [5, []]]);
      assert.deepEqual(got.expunged.map((e) => [e.uid, e.guid]), [[4, saved[3]!.guid]]);
    } finally {
      await store.close();
    }
    // A read of the uidlist would have taken UID 2's file for a new one (its line names another).
    assert.deepEqual(warnings, []);
    assert.equal(readFileSync(path, 'utf8'), lying, 'nor written');
  });

  it('a new file and a file back under an expunged message\'s line: the real uidlist is read, the new file gets the next UID and the one back the UID after', async () => {
    const root = join(scratch, 'back', 'Maildir');
    const location = `maildir:${root}`;
    const mail = corpusMessages(5);
    const keep = join(scratch, 'kept-message');
    let store = openStore(location);
    let saved;
    try {
      saved = await store.saveMessages(INBOX, mail.slice(0, 4).map((m) => req(m)));
      const two = fileOf(root, saved[1]!.guid);
      copyFileSync(two, keep);
      unlinkSync(two);
      assert.deepEqual((await store.getMessages(INBOX)).messages.map((m) => m.uid), [1, 3, 4]);
    } finally {
      await store.close();
    }
    age(root);
    store = openStore(location);
    try {
      await store.getMessages(INBOX);
    } finally {
      await store.close();
    }
    // The removed message comes back under its name; a new one is delivered.
    copyFileSync(keep, join(root, 'cur', `${saved[1]!.guid}:2,S`));
    writeFileSync(join(root, 'new', '1700000100.M1P9.mx'), mail[4]!);
    const before = readFileSync(join(root, 'dovecot-uidlist'), 'utf8').split('\n').slice(1, -1);
    assert.ok(before.some((l) => l.startsWith('2 ')), 'the expunged message\'s line is still there');
    const expected = [[1, saved[0]!.guid], [3, saved[2]!.guid], [4, saved[3]!.guid], [5, '1700000100.M1P9.mx'], [6, saved[1]!.guid]];
    store = openStore(location);
    try {
      const got = await store.getMessages(INBOX);
      assert.deepEqual(got.messages.map((m) => [m.uid, m.guid]), expected);
    } finally {
      await store.close();
    }
    const after = readFileSync(join(root, 'dovecot-uidlist'), 'utf8').split('\n').slice(1, -1);
    assert.deepEqual(after, [...before.filter((l) => !l.startsWith('2 ')), '5 :1700000100.M1P9.mx', `6 :${saved[1]!.guid}`]);
    await grantDovecotAccess(join(scratch, 'back'));
    assert.deepEqual((await doveadmFetch(d, 'alice', location, 'INBOX')).map((m) => [m.uid, m.guid]), expected);
  });
});
