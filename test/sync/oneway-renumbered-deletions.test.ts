/**
 * A message `sync -1` had to give a new UID in the destination (a UID clash) sits there at
 * another UID than in the source for good. When the destination's user deletes it, the next
 * `sync -1` must neither bring it back nor take the deletion for a change during the run (exit
 * 2, every run after), whether or not the run that moved it recorded its watermark.
 * Found by oneway-random.test.ts (seed 317921479).
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { runBackup } from '../../src/sync/backup.js';
import { runSync, type SyncOptions } from '../../src/sync/sync.js';
import { INBOX, saveOne, tempRoots, withStores } from './maildir-pair.js';

/** Backup of two messages; then A and B each get a different message at UID 3, and `sync -1` with `first` moves both in B. */
async function clash(first: SyncOptions, fn: (a: string, b: string, fromA: string, fromB: string) => Promise<void>): Promise<void> {
  const { dir, a, b } = await tempRoots('oneway-renumbered');
  try {
    const [fromA, fromB] = await withStores(a, b, async (sa, sb) => {
      await saveOne(sa, INBOX, 'one');
      await saveOne(sa, INBOX, 'two');
      await runBackup(sa, sb);
      const ma = await saveOne(sa, INBOX, 'new in A');
      const mb = await saveOne(sb, INBOX, 'new in B');
      assert.equal(ma.uid, mb.uid);
      await runSync(sa, sb, { mode: 'oneway', ...first });
      const moved = (await sb.getMessages(INBOX)).messages.filter((m) => m.uid >= 4).map((m) => m.guid).sort();
      assert.deepEqual(moved, [ma.guid, mb.guid].sort(), 'both moved above both UIDNEXTs in B');
      return [ma.guid, mb.guid];
    });
    await fn(a, b, fromA, fromB);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const runs: [string, SyncOptions][] = [
  ['a plain sync -1', {}],
  // A filtered run records no watermark: only the expunge log can tell what B deleted.
  ['a filtered sync -1 (no watermark)', { messageFilter: () => true }],
];

describe("a destination's deletion of a message sync -1 renumbered", () => {
  for (const [title, first] of runs) {
    it(`after ${title}: stays deleted, the next run is clean and a second one a no-op`, () =>
      clash(first, async (a, b, fromA, fromB) => {
        await withStores(a, b, async (sa, sb) => {
          const uid = (await sb.getMessages(INBOX)).messages.find((m) => m.guid === fromA)!.uid;
          await sb.expunge(INBOX, [uid]);
          // New mail in A too, so that the run has work to do and checks its own result.
          const later = await saveOne(sa, INBOX, 'later in A');
          const r = await runSync(sa, sb, { mode: 'oneway' });
          assert.equal(r.changedDuringSync, false, 'nothing changed during the run');
          assert.equal(r.saved, 1, 'only the new message is copied');
          const guids = (await sb.getMessages(INBOX)).messages.map((m) => m.guid);
          assert.ok(!guids.includes(fromA), "B's deletion stays");
          assert.ok(guids.includes(fromB) && guids.includes(later.guid));
          assert.equal(guids.length, 4);
          const again = await runSync(sa, sb, { mode: 'oneway' });
          assert.deepEqual([again.saved, again.expunged, again.flagUpdates, again.changedDuringSync], [0, 0, 0, false]);
        });
      }));
  }

  it("a message A holds twice is not taken for deleted when B deleted only one copy", () =>
    clash({}, async (a, b, fromA) => {
      await withStores(a, b, async (sa, sb) => {
        // A second copy of A's message (same body and GUID) arrives in A, at A's next UID.
        const body = await sa.openMessage(INBOX, (await sa.getMessages(INBOX)).messages.find((m) => m.guid === fromA)!.uid);
        const [copy] = await sa.saveMessages(INBOX, [{ guid: fromA, flags: [], keywords: [], receivedDate: 0, body: () => body }]);
        assert.equal(copy!.guid, fromA);
        await runSync(sa, sb, { mode: 'oneway' });
        const inB = (await sb.getMessages(INBOX)).messages.filter((m) => m.guid === fromA);
        assert.equal(inB.length, 2, 'both copies reached B');
        await sb.expunge(INBOX, [inB[0]!.uid]);
        await runSync(sa, sb, { mode: 'oneway' });
        assert.equal((await sb.getMessages(INBOX)).messages.filter((m) => m.guid === fromA).length, 1, 'the deleted copy stays deleted, the other stays');
      });
    }));
});
