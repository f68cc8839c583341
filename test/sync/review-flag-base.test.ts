/**
 * Per-flag merge against the agreed base: the base must describe the flags both sides held when
 * the recorded pair state was taken. Runs that change flags without recording a base (a one-way
 * merge, a filtered run) leave an older base behind, and a later conflict is merged against it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { runSync, type SyncOptions } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';

const INBOX = ['INBOX'];

function open(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

async function withPair(fn: (a: MaildirStore, b: MaildirStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-base-'));
  const a = open(join(dir, 'a'));
  const b = open(join(dir, 'b'));
  try {
    await fn(a, b);
  } finally {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function flagsOf(s: MailStore): Promise<string[][]> {
  return (await s.getMessages(INBOX)).messages.map((m) => [...m.flags, ...m.keywords].sort());
}

/**
 * X is synced with no flags; A sets \Seen and an in-between run carries it to B; then A removes
 * \Seen again while B flags the message. A's removal is the newer change to \Seen and must win.
 */
async function staleBaseScenario(a: MailStore, b: MailStore, between: SyncOptions): Promise<void> {
  await a.saveMessages(INBOX, [req(message('x'))]);
  await runSync(a, b);
  assert.deepEqual(await flagsOf(b), [[]]);

  await a.updateFlags(INBOX, [{ uid: 1, flags: ['\\Seen'], keywords: [] }]);
  await runSync(a, b, between);
  assert.deepEqual(await flagsOf(b), [['\\Seen']], 'the in-between run carried \\Seen to B');

  await a.updateFlags(INBOX, [{ uid: 1, flags: [], keywords: [] }]);
  await b.updateFlags(INBOX, [{ uid: 1, flags: ['\\Seen', '\\Flagged'], keywords: [] }]);
  await runSync(a, b);
  assert.deepEqual(await flagsOf(a), [['\\Flagged']], 'A un-read the message after B last saw it read: \\Seen stays off');
  assert.deepEqual(await flagsOf(b), [['\\Flagged']]);
}

describe('per-flag merge base', () => {
  it('a flag removed after a one-way run (sync -1) carried it stays removed when the other side changed another flag', () =>
    withPair((a, b) => staleBaseScenario(a, b, { mode: 'oneway' })));

  it('a flag removed after a filtered run carried it stays removed when the other side changed another flag', () =>
    withPair((a, b) => staleBaseScenario(a, b, { messageFilter: () => true })));

  it('control: with a plain two-way run in between, the removal wins and B\'s flag is kept', () =>
    withPair((a, b) => staleBaseScenario(a, b, {})));

  it('reversed direction (B first) merges against the same base', () =>
    withPair(async (a, b) => {
      await a.saveMessages(INBOX, [req(message('x')), req(message('y'))]);
      await runSync(a, b);
      await a.updateFlags(INBOX, [{ uid: 1, flags: ['\\Seen'], keywords: [] }]);
      await b.updateFlags(INBOX, [{ uid: 1, flags: ['\\Flagged'], keywords: ['$Work'] }]);
      await runSync(b, a);
      assert.deepEqual(await flagsOf(a), [['$Work', '\\Flagged', '\\Seen'], []]);
      assert.deepEqual(await flagsOf(b), [['$Work', '\\Flagged', '\\Seen'], []]);
      // And back: A removes $Work, B removes \Seen; run from A.
      await a.updateFlags(INBOX, [{ uid: 1, flags: ['\\Seen', '\\Flagged'], keywords: [] }]);
      await b.updateFlags(INBOX, [{ uid: 1, flags: ['\\Flagged'], keywords: ['$Work'] }]);
      await runSync(a, b);
      assert.deepEqual(await flagsOf(a), [['\\Flagged'], []]);
      assert.deepEqual(await flagsOf(b), [['\\Flagged'], []]);
      const again = await runSync(a, b);
      assert.deepEqual([again.saved, again.flagUpdates, again.expunged, again.changedDuringSync], [0, 0, 0, false]);
    }));
});
