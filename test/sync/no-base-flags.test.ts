/**
 * With no base at all (no earlier sync of the pair, no agreed flags), a flag difference goes to
 * the side that changed it later, by the change times both stores give; not to whichever
 * location was named first. Where a store gives no time, the first location still wins.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { MessageMeta, SystemFlag } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { planTwoWay, type SyncSide, type TwoWayPlan } from '../../src/sync/twoway-plan.js';
import { contents, INBOX, muaSetFlags, saveOne, tempRoots, withStores } from './maildir-pair.js';

const msg = (uid: number, guid: string, flags: SystemFlag[], keywords: string[] = []): MessageMeta => ({
  uid,
  guid,
  flags,
  keywords,
  modseq: 5,
  receivedDate: 0,
  size: 10,
});
const side = (messages: MessageMeta[], times?: [number, number][]): SyncSide => ({
  uidValidity: 1,
  uidNext: 10,
  messages,
  expunged: new Map(),
  uniqueGuids: true,
  ...(times ? { flagsChangedAt: new Map(times) } : {}),
});
const updates = (plan: TwoWayPlan, s: 'a' | 'b') => plan[s].flagUpdates.map((u) => [u.uid, [...u.flags, ...u.keywords]]);

describe('planner, no base', () => {
  it('the side that changed the flags later wins, also when it is named second', () => {
    const plan = planTwoWay(side([msg(1, 'g', ['\\Flagged'])], [[1, 1000]]), side([msg(1, 'g', ['\\Seen'])], [[1, 2000]]));
    assert.deepEqual(updates(plan, 'a'), [[1, ['\\Seen']]]);
    assert.deepEqual(updates(plan, 'b'), []);
  });

  it('the first side wins when it changed later', () => {
    const plan = planTwoWay(side([msg(1, 'g', ['\\Flagged'], ['work'])], [[1, 3000]]), side([msg(1, 'g', ['\\Seen'])], [[1, 2000]]));
    assert.deepEqual(updates(plan, 'a'), []);
    assert.deepEqual(updates(plan, 'b'), [[1, ['\\Flagged', 'work']]]);
  });

  it('without a time from both sides, or with equal times, the first side wins as before', () => {
    for (const [ta, tb] of [[undefined, 2000], [1000, undefined], [2000, 2000]] as const) {
      const plan = planTwoWay(
        side([msg(1, 'g', ['\\Flagged'])], ta === undefined ? undefined : [[1, ta]]),
        side([msg(1, 'g', ['\\Seen'])], tb === undefined ? undefined : [[1, tb]]),
      );
      assert.deepEqual(updates(plan, 'b'), [[1, ['\\Flagged']]], `times ${ta} ${tb}`);
    }
  });

  it('a base still merges flag by flag, whatever the times', () => {
    const bases = new Map([['g', { flags: [] as SystemFlag[], keywords: [] }]]);
    const plan = planTwoWay(side([msg(1, 'g', ['\\Flagged'])], [[1, 1000]]), side([msg(1, 'g', ['\\Seen'])], [[1, 2000]]), 'twoway', true, bases);
    assert.deepEqual(updates(plan, 'a'), [[1, ['\\Flagged', '\\Seen']]]);
    assert.deepEqual(updates(plan, 'b'), [[1, ['\\Flagged', '\\Seen']]]);
  });

  it('renumbered on both sides, the moved copies carry the later flags', () => {
    // One GUID at different UIDs: both copies move to a new UID with the merged flags.
    const plan = planTwoWay(side([msg(1, 'g', ['\\Flagged'])], [[1, 1000]]), side([msg(2, 'g', ['\\Seen'])], [[2, 2000]]));
    assert.deepEqual(plan.a.saves.map((s) => [s.uid, s.flags]), [[10, ['\\Seen']]]);
    assert.deepEqual(plan.b.saves.map((s) => [s.uid, s.flags]), [[10, ['\\Seen']]]);
  });

  it('one way, the destination keeps flags it changed later and takes the source\'s later ones', () => {
    const a = side([msg(1, 'g', ['\\Flagged']), msg(2, 'h', ['\\Answered'])], [[1, 1000], [2, 3000]]);
    const b = side([msg(1, 'g', ['\\Seen']), msg(2, 'h', [])], [[1, 2000], [2, 2000]]);
    const plan = planTwoWay(a, b, 'oneway');
    assert.deepEqual(updates(plan, 'b'), [[2, ['\\Answered']]]);
    assert.deepEqual(updates(plan, 'a'), []);
  });

  it('one way, a message at another UID in the destination keeps the destination\'s later flags', () => {
    const plan = planTwoWay(side([msg(1, 'g', ['\\Flagged'])], [[1, 1000]]), side([msg(2, 'g', ['\\Seen'])], [[2, 2000]]), 'oneway');
    assert.deepEqual(updates(plan, 'b'), []);
  });

  it('property: both directions of a pair plan the same flags when the times differ', () => {
    const flagSet = fc.subarray(['\\Answered', '\\Flagged', '\\Seen'] as SystemFlag[]);
    fc.assert(
      fc.property(fc.array(fc.tuple(flagSet, flagSet, fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 0, max: 1e6 })), { minLength: 1, maxLength: 6 }), (rows) => {
        const distinct = rows.filter(([, , ta, tb]) => ta !== tb);
        const ms = (pick: 0 | 1) => distinct.map((r, i) => msg(i + 1, `g${i}`, r[pick]));
        const times = (pick: 2 | 3) => distinct.map((r, i): [number, number] => [i + 1, r[pick]]);
        const [a, b] = [side(ms(0), times(2)), side(ms(1), times(3))];
        const end = (mine: readonly MessageMeta[], plan: TwoWayPlan['a']) =>
          mine.map((m) => [...(plan.flagUpdates.find((u) => u.uid === m.uid)?.flags ?? m.flags)].sort().join());
        const ab = planTwoWay(a, b);
        const ba = planTwoWay(b, a);
        assert.deepEqual(end(a.messages, ab.a), end(b.messages, ab.b), 'one run leaves both sides equal');
        assert.deepEqual(end(a.messages, ab.a), end(a.messages, ba.b), 'the order of the locations does not matter');
        distinct.forEach((r, i) => assert.equal(end(a.messages, ab.a)[i], [...(r[2] > r[3] ? r[0] : r[1])].sort().join()));
      }),
    );
  });
});

/**
 * Two Maildirs made from one source by separate backups: the same messages, UIDs and
 * UIDVALIDITY, but no sync between them. Then message 1 is flagged \Seen in B, and message 2
 * \Flagged in A, each later than the other side's copy was made.
 */
async function independentCopies(dir: string): Promise<{ a: string; b: string; guids: string[] }> {
  const [src, a, b] = ['src', 'a', 'b'].map((n) => join(dir, n)) as [string, string, string];
  const guids = await withStores(src, a, async (ss, sa) => {
    const saved = [await saveOne(ss, INBOX, 'one'), await saveOne(ss, INBOX, 'two'), await saveOne(ss, INBOX, 'three', { flags: ['\\Seen'] })];
    await runBackup(ss, sa);
    return saved.map((m) => m.guid);
  });
  // File change times are kept at the kernel's clock tick: leave several between the steps.
  await sleep(50);
  await withStores(src, b, async (ss, sb) => void (await runBackup(ss, sb)));
  await sleep(50);
  muaSetFlags(a, INBOX, guids[1]!, 'F');
  await sleep(50);
  muaSetFlags(b, INBOX, guids[0]!, 'S');
  return { a, b, guids };
}

describe('two Maildirs without an earlier sync', () => {
  for (const order of ['a b', 'b a'] as const) {
    it(`sync ${order}: each side's later flag change wins`, async () => {
      const { dir } = await tempRoots('no-base-flags');
      try {
        const { a, b, guids } = await independentCopies(dir);
        const [first, second] = order === 'a b' ? [a, b] : [b, a];
        await withStores(first, second, async (s1, s2) => {
          await runSync(s1, s2);
          const want = [`1 ${guids[0]} \\Seen`, `2 ${guids[1]} \\Flagged`, `3 ${guids[2]} \\Seen`];
          assert.deepEqual(await contents(s1, INBOX), want);
          assert.deepEqual(await contents(s2, INBOX), want);
          const again = await runSync(s1, s2);
          assert.equal(again.flagUpdates, 0);
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('sync -1 keeps the destination\'s own later flag change and takes the source\'s later one', async () => {
    const { dir } = await tempRoots('no-base-flags-oneway');
    try {
      const { a, b, guids } = await independentCopies(dir);
      await withStores(a, b, async (sa, sb) => {
        await runSync(sa, sb, { mode: 'oneway' });
        assert.deepEqual(await contents(sb, INBOX), [`1 ${guids[0]} \\Seen`, `2 ${guids[1]} \\Flagged`, `3 ${guids[2]} \\Seen`]);
        assert.deepEqual(await contents(sa, INBOX), [`1 ${guids[0]} `, `2 ${guids[1]} \\Flagged`, `3 ${guids[2]} \\Seen`], 'the source is not touched');
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('two Maildirs without an earlier sync, under two UIDVALIDITYs', () => {
  it('the merge of the UIDVALIDITYs keeps the later flag change of the side it rebuilds', async () => {
    const { dir } = await tempRoots('no-base-flags-uidvalidity');
    try {
      const { a, b, guids } = await independentCopies(dir);
      // B re-stamped (a copy made by another program): A, holding as many messages, is kept.
      await withStores(a, b, async (_sa, sb) => {
        const st = await sb.mailboxStatus(INBOX);
        await sb.updateMailbox(INBOX, { uidValidity: st!.uidValidity + 7 });
      });
      await withStores(a, b, async (sa, sb) => {
        await runSync(sa, sb);
        const flags = async (s: typeof sa) => (await contents(s, INBOX)).map((line) => line.split(' ').slice(1).join(' '));
        const want = [`${guids[0]} \\Seen`, `${guids[1]} \\Flagged`, `${guids[2]} \\Seen`];
        assert.deepEqual(await flags(sa), want);
        assert.deepEqual(await flags(sb), want);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
