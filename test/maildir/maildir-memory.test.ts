/**
 * What a large Maildir mailbox costs in memory once scanned and listed: the index's cached rows,
 * the listing's MessageMeta records and whatever the scan left behind. A million-message mailbox
 * must fit a backup in well under 1 GB, so this holds it to less than 1,000 bytes a message.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { formatUidlist } from '../../src/storage/maildir/uidlist.js';
import { liveHeap } from '../support/live-heap.js';

const heapUsed = liveHeap;

const COUNT = 20_000;

/** A mailbox written as a delivery agent and Dovecot leave it: files in cur/ and their uidlist. */
function writeMailbox(dir: string): void {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, 'maildirfolder'), '');
  writeFileSync(join(dir, 'dovecot-keywords'), '0 $Forwarded\n1 todo\n');
  const entries = [];
  const letters = ['S', 'RS', 'FS', '', 'Sa', 'STb'];
  for (let i = 0; i < COUNT; i++) {
    const body = `Subject: m ${i}\nMessage-ID: <${i}@memory.test>\n\nbody ${i}\n`;
    const base = `${1_500_000_000 + i}.M${i}P1Q${i}.memtest,S=${body.length}`;
    writeFileSync(join(dir, 'cur', `${base}:2,${letters[i % letters.length]}`), body);
    entries.push({ uid: i + 1, basename: base, extra: [] as [string, string][] });
  }
  writeFileSync(join(dir, 'dovecot-uidlist'), formatUidlist({ version: 3, uidValidity: 7, nextUid: COUNT + 1, mailboxGuid: 'ab'.repeat(16), headerExtra: [], entries }));
}

test(`a scanned and listed ${COUNT}-message Maildir mailbox holds less than 1,000 bytes a message`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-memory-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const root = join(dir, 'Maildir');
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(root, sub), { recursive: true });
  writeMailbox(join(root, '.Big Box'));

  const before = heapUsed();
  const store = MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { fsync: false, warn: () => {} });
  const listing = await store.getMessages(['Big Box']);
  const perMessage = (heapUsed() - before) / COUNT;
  assert.equal(listing.messages.length, COUNT);
  t.diagnostic(`${perMessage.toFixed(0)} bytes a message`);
  assert.ok(perMessage < 1000, `${perMessage.toFixed(0)} bytes a message`);

  // Every behaviour kept: flags and keywords as the file names say.
  const byUid = new Map(listing.messages.map((m) => [m.uid, m]));
  assert.deepEqual(byUid.get(1)!.flags, ['\\Seen']);
  assert.deepEqual(byUid.get(2)!.flags, ['\\Answered', '\\Seen']);
  assert.deepEqual(byUid.get(4)!.flags, []);
  assert.deepEqual(byUid.get(5)!.keywords, ['$Forwarded']);
  assert.deepEqual(byUid.get(6)!.flags, ['\\Deleted', '\\Seen']);
  assert.deepEqual(byUid.get(6)!.keywords, ['todo']);
  // Shared flag sets are frozen: a caller that changed one would change every message's.
  assert.equal(byUid.get(1)!.flags, byUid.get(7)!.flags);
  assert.throws(() => byUid.get(1)!.flags.push('\\Flagged'), TypeError);
  assert.throws(() => byUid.get(1)!.keywords.push('x'), TypeError);
  // A flag change through the store still lands, and the next listing shows it.
  await store.updateFlags(['Big Box'], [{ uid: 1, flags: ['\\Seen', '\\Flagged'], keywords: ['todo'] }]);
  const again = await store.getMessages(['Big Box']);
  const first = again.messages.find((m) => m.uid === 1)!;
  assert.deepEqual([first.flags, first.keywords], [['\\Flagged', '\\Seen'], ['todo']]);
  assert.deepEqual(again.messages.find((m) => m.uid === 7)!.flags, ['\\Seen']);
  await store.close();
});
