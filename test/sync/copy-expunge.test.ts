/**
 * A GUID held twice in a mailbox at different sizes (two messages, not the leftover of a
 * renumbering): one side deletes one copy while the other changes the other copy's flags.
 * The deletion must reach the other side once, both paths (incremental and whole) alike, and
 * the next run must find nothing to do. Copies pair by their order among the GUID's UIDs, and an
 * expunge proved nothing while the side still held the GUID: the deleted copy came back (paired
 * with the survivor, the survivor saved again) and every run exited 2.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import type { MailStore, MessageMeta } from '../../src/storage/store.js';
import { runSync } from '../../src/sync/sync.js';
import { planTwoWay, type SyncSide, type TwoWayPlan } from '../../src/sync/twoway-plan.js';
import { message, req } from '../contract/store-contract.js';
import { INBOX, openMaildir, tempRoots } from './maildir-pair.js';

async function state(s: MailStore) {
  return (await s.getMessages(INBOX)).messages.map((m) => `${m.uid} ${m.guid} ${m.size} ${[...m.flags].sort()}`);
}

it(
  'one of two copies of a GUID deleted on A while B flags the other: deleted once, both paths alike',
  async () => {
    const roots = await tempRoots('copy-expunge');
    try {
      {
        const a = openMaildir(roots.a);
        const b = openMaildir(roots.b);
        const [first] = await a.saveMessages(INBOX, [req(message('orig', 'short\n'))]);
        await a.saveMessages(INBOX, [req(message('other'))]);
        await a.saveMessages(INBOX, [req(message('orig', 'a longer body of another size\n'), { guid: first!.guid })]);
        await runSync(a, b);
        await a.expunge(INBOX, [first!.uid]);
        await b.updateFlags(INBOX, [{ uid: 3, flags: ['\\Flagged'], keywords: [] }]);
        await a.close();
        await b.close();
      }
      cpSync(roots.dir, `${roots.dir}-whole`, { recursive: true });
      const out: Record<string, { runs: unknown[]; a: string[]; b: string[] }> = {};
      for (const [label, dir, noIncremental] of [['incremental', roots.dir, false], ['whole', `${roots.dir}-whole`, true]] as const) {
        const a = openMaildir(join(dir, 'a'));
        const b = openMaildir(join(dir, 'b'));
        try {
          const runs = [];
          for (let i = 0; i < 3; i++) {
            const r = await runSync(a, b, { noIncremental });
            runs.push({ saved: r.saved, expunged: r.expunged, flagUpdates: r.flagUpdates, changed: r.changedDuringSync });
            if (!r.changedDuringSync) break;
          }
          out[label] = { runs, a: await state(a), b: await state(b) };
        } finally {
          await a.close();
          await b.close();
        }
      }
      assert.deepEqual(out.incremental, out.whole);
      assert.equal(out.whole!.runs.length, 1, 'one run settles it');
      assert.deepEqual(out.whole!.a, out.whole!.b);
      assert.equal(out.whole!.a.length, 2, 'the deleted copy stays deleted');
      assert.match(out.whole!.a.find((l) => l.startsWith('3 '))!, /\\Flagged/);
    } finally {
      await rm(`${roots.dir}-whole`, { recursive: true, force: true });
      await rm(roots.dir, { recursive: true, force: true });
    }
  },
);

const meta = (uid: number, guid: string, size: number, modseq = 1): MessageMeta => ({ uid, guid, flags: [], keywords: [], modseq, receivedDate: 0, size });
const side = (messages: MessageMeta[], expunged: [string, number[]][] = []): SyncSide => ({ uidValidity: 1, uidNext: 10, messages, expunged: new Map(expunged), syncedModseq: 5, uniqueGuids: true });

it('the planner: a copy deleted at its UID on one side goes on the other; a renumbering there does not count as one', () => {
  // B deleted g's copy at UID 1 and keeps the one at UID 3, which A holds too.
  let plan = planTwoWay(side([meta(1, 'g', 10), meta(2, 'h', 20), meta(3, 'g', 30)]), side([meta(2, 'h', 20), meta(3, 'g', 30)], [['g', [1]]]));
  assert.deepEqual(plan.a.expunges, [1]);
  assert.deepEqual([plan.a.saves, plan.b.saves, plan.b.expunges, plan.a.flagUpdates, plan.b.flagUpdates], [[], [], [], [], []]);
  // B moved its copy at 3 to 7 (a renumbering, not a deletion): both sides still end with two
  // copies of g, as the planners renumbered before.
  const held = (p: TwoWayPlan, sd: 'a' | 'b', before: number) => before - p[sd].expunges.length + p[sd].saves.filter((x) => x.guid === 'g').length;
  plan = planTwoWay(side([meta(1, 'g', 10), meta(3, 'g', 30)]), side([meta(1, 'g', 10), meta(7, 'g', 30, 6)], [['g', [3]]]));
  assert.deepEqual([held(plan, 'a', 2), held(plan, 'b', 2)], [2, 2]);
  // A single copy is never judged here: an expunge of a GUID held elsewhere is a move.
  plan = planTwoWay(side([meta(3, 'g', 30)]), side([meta(7, 'g', 30, 6)], [['g', [3]]]));
  assert.deepEqual([held(plan, 'a', 1), held(plan, 'b', 1)], [1, 1]);
});
