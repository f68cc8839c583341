/**
 * Header-hash matching and GUID-only planning against a store that hands out its own UIDs and
 * has no native GUIDs (test/support/foreign-store.ts): the shapes of an IMAP server without X-GUID.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { EMPTY_HEADER_HASH } from '../../src/model/header-hash.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { pairByHash } from '../../src/sync/hash-match.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { ForeignStore } from '../support/foreign-store.js';

const INBOX = ['INBOX'];

async function withPair(fn: (a: MaildirStore, b: ForeignStore, reopenB: () => ForeignStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-hash-'));
  const a = MaildirStore.open(parseMaildirLocation(`maildir:${join(dir, 'a')}`), { create: true, fsync: false, warn: () => {} });
  let b = ForeignStore.open(join(dir, 'b'));
  try {
    await fn(a, b, () => (b = ForeignStore.open(join(dir, 'b'))));
  } finally {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function guidsOf(s: MailStore): Promise<string[]> {
  return (await s.getMessages(INBOX)).messages.map((m) => m.guid).sort();
}

describe('pairByHash', () => {
  it('pairs equal hashes one to one, lowest UIDs first, and never pairs header-less mail', () => {
    const a = new Map([[1, 'x'], [2, 'x'], [3, 'y'], [4, EMPTY_HEADER_HASH]]);
    const b = new Map([[9, 'x'], [7, 'z'], [8, EMPTY_HEADER_HASH]]);
    assert.deepEqual(pairByHash(a, b), [{ uidA: 1, uidB: 9 }]);
    assert.deepEqual(pairByHash(new Map(), b), []);
  });
});

describe('stores without native GUIDs', () => {
  it('a first sync of two sides that already hold the same mail duplicates nothing, and the GUIDs stick', () =>
    withPair(async (a, b, reopenB) => {
      const bodies = ['one', 'two', 'three'].map((s) => message(s));
      await a.saveMessages(INBOX, bodies.map((x) => req(x)));
      await b.saveMessages(INBOX, [req(bodies[2]!), req(bodies[0]!), req(message('only-on-b'))]);
      const r = await runSync(a, b);
      assert.equal(r.saved, 2, 'one copy each way: two on A only, one on B only');
      assert.equal((await a.getMessages(INBOX)).messages.length, 4);
      assert.equal((await b.getMessages(INBOX)).messages.length, 4);
      assert.deepEqual(await guidsOf(reopenB()), await guidsOf(a), 'B adopted the Maildir GUIDs, kept across a reopen');
      const again = await runSync(a, b);
      assert.deepEqual([again.saved, again.expunged, again.flagUpdates, again.changedDuringSync], [0, 0, 0, false]);
    }));

  it('messages with different UIDs on the two sides match by GUID: flags and expunges travel, nothing is renumbered', () =>
    withPair(async (a, b) => {
      await b.saveMessages(INBOX, [req(message('filler'))]);
      await b.expunge(INBOX, [1]);
      await a.saveMessages(INBOX, [req(message('m1')), req(message('m2'))]);
      await runSync(a, b);
      const ma = (await a.getMessages(INBOX)).messages;
      const mb = (await b.getMessages(INBOX)).messages;
      assert.deepEqual(ma.map((m) => m.uid), [1, 2]);
      assert.deepEqual(mb.map((m) => m.uid), [2, 3], 'B handed out its own UIDs');
      const m1AtB = mb.find((m) => m.guid === ma[0]!.guid)!;
      const m2AtB = mb.find((m) => m.guid === ma[1]!.guid)!;
      await b.updateFlags(INBOX, [{ uid: m1AtB.uid, flags: ['\\Seen'], keywords: ['$Label1'] }]);
      await a.expunge(INBOX, [2]);
      const r = await runSync(a, b);
      assert.equal(r.saved, 0);
      assert.deepEqual((await a.getMessages(INBOX)).messages.map((m) => [m.uid, m.flags, m.keywords]), [[1, ['\\Seen'], ['$Label1']]]);
      assert.deepEqual((await b.getMessages(INBOX)).messages.map((m) => m.uid), [m1AtB.uid], `m2 (UID ${m2AtB.uid} on B) is expunged`);
      const again = await runSync(b, a, { full: true });
      assert.deepEqual([again.saved, again.expunged, again.flagUpdates, again.changedDuringSync], [0, 0, 0, false]);
    }));

  it('backup into a store that hands out its own UIDs converges by GUID and a re-run is a no-op', () =>
    withPair(async (a, b) => {
      await b.saveMessages(INBOX, [req(message('stale'))]);
      await b.saveMessages(INBOX, [req(message('kept'))]);
      await a.saveMessages(INBOX, [req(message('kept'), { flags: ['\\Flagged'] }), req(message('new'))]);
      const r = await runBackup(a, b);
      assert.deepEqual([r.saved, r.expunged, r.flagUpdates, r.rebuilt], [1, 1, 1, 0], 'copy new, drop stale, flag kept; no rebuild');
      assert.deepEqual(await guidsOf(b), await guidsOf(a));
      const again = await runBackup(a, b);
      assert.deepEqual([again.saved, again.expunged, again.flagUpdates, again.rebuilt, again.changedDuringSync], [0, 0, 0, 0, false]);
    }));
});
