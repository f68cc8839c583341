/**
 * The change index keeps the rows of the mailbox read last for the next reading, but not those of
 * a mailbox too large to keep (CACHED_ROWS_MAX): a 700,000-message folder's rows held beside a
 * run's own listings of it cost more memory than reading them again costs time. Either way a
 * reading returns every row, in UID order, and sees the index's own writes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CACHED_ROWS_MAX, ChangeIndex, type MessageChange } from '../../src/storage/index/change-index.js';
import { indexRow } from '../../src/storage/maildir/index-row.js';
import { liveHeap } from '../support/live-heap.js';

const heapUsed = liveHeap;

function adds(count: number, from = 1): MessageChange[] {
  return Array.from({ length: count }, (_, i) => {
    const uid = from + i;
    const guid = uid.toString(16).padStart(32, '0');
    return { kind: 'add', message: indexRow(uid, guid, `cur/${guid}:2,S`, 'S', [], 1_700_000_000_000 + uid, 100 + (uid % 50)) } as MessageChange;
  });
}

test('the rows of a small mailbox are kept between readings; a mailbox over the limit is read again each time and held by nobody', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-index-rows-'));
  const index = ChangeIndex.open(dir, { fsync: false });
  t.after(async () => {
    index.close();
    await rm(dir, { recursive: true, force: true });
  });
  const small = index.addMailbox('a'.repeat(32), ['Small'], 1);
  const big = index.addMailbox('b'.repeat(32), ['Big'], 1);
  index.applyChanges(small.id, adds(1_000));
  const bigCount = CACHED_ROWS_MAX + 1;
  // Written in batches, as saves are, and out of UID order, so a reading must sort them.
  index.applyChanges(big.id, adds(bigCount - 5_000, 5_001));
  index.applyChanges(big.id, adds(5_000, 1));

  const first = index.messages(small.id);
  const second = index.messages(small.id);
  assert.equal(first.length, 1_000);
  assert.equal(first[17], second[17], 'the same row objects: kept, not read again');
  assert.notEqual(first, second, 'each caller gets its own array');

  const before = heapUsed();
  let uids: number[] | undefined = index.messagesAs(big.id, (m) => m.uid);
  assert.equal(uids.length, bigCount);
  assert.ok(uids.every((u, i) => u === i + 1), 'every row, in UID order');
  uids = undefined;
  const retained = heapUsed() - before;
  // Kept, the rows would hold some 200 bytes each (over 10 MB here).
  assert.ok(retained < 2_000_000, `${retained} bytes still held after the reading`);
  const a = index.messages(big.id);
  const b = index.messages(big.id);
  assert.notEqual(a[3], b[3], 'read again, not kept');
  assert.deepEqual(a[3], b[3]);

  // The small mailbox was dropped when the big one was read, and the index's own writes show.
  index.applyChanges(small.id, [{ kind: 'expunge', uid: 3, guid: (3).toString(16).padStart(32, '0') }]);
  assert.equal(index.messages(small.id).length, 999);
  index.applyChanges(big.id, adds(2, bigCount + 1));
  assert.equal(index.messagesAs(big.id, (m) => m.uid).at(-1), bigCount + 2);
});
