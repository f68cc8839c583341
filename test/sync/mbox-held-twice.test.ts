/**
 * An mbox holding one message twice (delivered twice: same bytes, so the same header hash and
 * the same GUID) synced two-way with a Maildir. The Maildir took both copies under that GUID and
 * then, at every run, took the older one for what an interrupted renumbering leaves behind:
 * it expunged it, the mbox's copy came back, and both were renumbered on both sides, run after
 * run (exit 2). The Maildir must keep both, as the mbox does, and the sync must settle.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { MailStore } from '../../src/storage/store.js';
import { runSync } from '../../src/sync/sync.js';
import { message } from '../contract/store-contract.js';
import { bodyCounts, bodyHash, fill, mixedPair } from './mixed-pair.js';

async function check(uidValidityA: number, uidValidityB: number, mboxFirst: boolean): Promise<void> {
  const twice = message('delivered twice', 'the same bytes both times\n');
  const other = message('only in the maildir', 'another body\n');
  const third = message('once in the mbox', 'a third body\n');
  const pair = await mixedPair('held-twice');
  const [a, b] = [pair.openA(), pair.openB()];
  const sync = () => (mboxFirst ? runSync(b, a) : runSync(a, b));
  try {
    await fill(a, uidValidityA, [other]);
    await fill(b, uidValidityB, [twice, twice, third]);
    const first = await sync();
    assert.equal(first.changedDuringSync, false, 'the first run settles');
    const want = new Map([[bodyHash(twice), 2], [bodyHash(other), 1], [bodyHash(third), 1]]);
    const sorted = async (s: MailStore) => [...(await bodyCounts(s))].sort();
    assert.deepEqual(await sorted(a), [...want].sort(), 'the maildir holds what the mbox holds, the message twice');
    assert.deepEqual(await sorted(b), [...want].sort(), 'the mbox keeps both copies and gains the other');
    for (let run = 0; run < 2; run++) {
      const again = await sync();
      assert.deepEqual([again.saved, again.expunged, again.flagUpdates, again.changedDuringSync], [0, 0, 0, false], `run ${run + 2} changes nothing`);
    }
  } finally {
    await a.close();
    await b.close();
    await rm(pair.dir, { recursive: true, force: true });
  }
}

describe('a message the mbox holds twice', () => {
  it('one UIDVALIDITY: both sides end with it twice and the sync settles', () => check(1000, 1000, false));
  it('different UIDVALIDITYs, the mbox passed first: the same', () => check(2000, 1000, true));
});
