/**
 * sameAtEveryUid lets a backup's final check skip the planner's maps when the destination is
 * equal to the source at every UID. It may say "equal" only where the backup plan is empty (a
 * flag or keyword apart, a UID missing or extra, another GUID, UIDVALIDITY or a higher UIDNEXT
 * all make it false), else a backup records a proven state over a difference and the sync that
 * follows plans from the changes alone, never seeing it.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { SYSTEM_FLAGS, type MessageMeta } from '../../src/storage/store.js';
import { isEmptyPlan, planMailboxBackup, sameAtEveryUid, type MailboxSide } from '../../src/sync/mailbox-plan.js';

const meta = fc.record(
  {
    uid: fc.integer({ min: 1, max: 12 }),
    guid: fc.constantFrom('g1', 'g2', 'g3', 'g4'),
    flags: fc.subarray([...SYSTEM_FLAGS]),
    keywords: fc.subarray(['$Forwarded', 'todo', 'work']),
    modseq: fc.integer({ min: 1, max: 100 }),
    receivedDate: fc.constant(1_700_000_000_000),
    size: fc.integer({ min: 0, max: 50 }),
  },
  { noNullPrototype: true },
);

const side = fc.record(
  {
    uidValidity: fc.constantFrom(7, 8),
    uidNext: fc.integer({ min: 1, max: 14 }),
    messages: fc.uniqueArray(meta, { selector: (m) => m.uid, maxLength: 8 }).map((ms) => ms.sort((a, b) => a.uid - b.uid)),
  },
  { noNullPrototype: true },
);

/** A side as another store lists the same mailbox: flags and keywords in another order, other modseqs. */
function relisted(s: MailboxSide): MailboxSide {
  return { ...s, messages: s.messages.map((m): MessageMeta => ({ ...m, flags: [...m.flags].reverse(), keywords: [...m.keywords].reverse(), modseq: m.modseq + 1 })) };
}

it('equal at every UID only where the backup plan is empty', () => {
  fc.assert(
    fc.property(side, side, (s, d) => {
      if (sameAtEveryUid(s, d)) assert.ok(isEmptyPlan(planMailboxBackup(s, d)), 'said equal where the plan is not empty');
    }),
    { numRuns: 2000 },
  );
});

it('a listing is equal to itself listed again, and stops being so at any one difference', () => {
  fc.assert(
    fc.property(side, fc.nat(), fc.constantFrom('flag', 'keyword', 'guid', 'uid', 'missing', 'uidValidity', 'uidNext'), (s, pick, what) => {
      const d = relisted(s);
      assert.ok(sameAtEveryUid(s, d));
      const ms = d.messages.map((m) => ({ ...m }));
      const i = ms.length === 0 ? -1 : pick % ms.length;
      let changed: MailboxSide;
      if (what === 'uidValidity') changed = { ...d, uidValidity: d.uidValidity + 1 };
      else if (what === 'uidNext') changed = { ...d, uidNext: s.uidNext + 1 };
      else if (i < 0) return;
      else {
        const m = ms[i]!;
        if (what === 'flag') m.flags = m.flags.includes('\\Seen') ? m.flags.filter((f) => f !== '\\Seen') : [...m.flags, '\\Seen'];
        if (what === 'keyword') m.keywords = m.keywords.includes('todo') ? m.keywords.filter((k) => k !== 'todo') : [...m.keywords, 'todo'];
        if (what === 'guid') m.guid = `${m.guid}x`;
        if (what === 'uid') m.uid += 100;
        if (what === 'missing') ms.splice(i, 1);
        changed = { ...d, messages: ms };
      }
      assert.equal(sameAtEveryUid(s, changed), false, `still equal after a change of ${what}`);
      assert.equal(isEmptyPlan(planMailboxBackup(s, changed)), false, `the planner sees the change of ${what}`);
    }),
    { numRuns: 1000 },
  );
});
