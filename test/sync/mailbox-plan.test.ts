import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isEmptyPlan, planMailboxBackup, type MailboxBackupPlan, type MailboxSide } from '../../src/sync/mailbox-plan.js';
import { SYSTEM_FLAGS, type MessageMeta, type SystemFlag } from '../../src/storage/store.js';

// ---------------------------------------------------------------------------------------------
// Helpers

function msg(uid: number, guid: string, flags: SystemFlag[] = [], keywords: string[] = []): MessageMeta {
  return { uid, guid, flags, keywords, modseq: uid, receivedDate: 1_700_000_000_000 + uid, size: 100 + uid };
}

function side(uidValidity: number, uidNext: number, messages: MessageMeta[]): MailboxSide {
  return { uidValidity, uidNext, messages };
}

/** A message as compared after a sync: flags and keywords as sorted sets. */
function canon(m: Pick<MessageMeta, 'uid' | 'guid' | 'flags' | 'keywords'>) {
  return { uid: m.uid, guid: m.guid, flags: [...new Set(m.flags)].sort(), keywords: [...new Set(m.keywords)].sort() };
}

function canonAll(messages: readonly MessageMeta[]) {
  return [...messages].sort((a, b) => a.uid - b.uid).map(canon);
}

/** A destination mailbox as a store keeps it. */
interface ModelBox {
  uidValidity: number;
  uidNext: number;
  messages: MessageMeta[];
}

/**
 * Carries a plan out on an in-memory destination that obeys the store rules: a save gets the
 * wanted UID only when it is at or above UIDNEXT (else UIDNEXT), UIDNEXT becomes max+1 after each
 * save and never goes down, a rebuild empties the mailbox and restarts UIDs under the source's
 * UIDVALIDITY. A missing destination is created empty with the source's UIDVALIDITY, as the tree
 * plan does. Plans that touch UIDs the destination does not hold fail the test: the store would
 * skip them silently, which would hide a planner bug.
 */
function applyPlan(source: MailboxSide, dest: MailboxSide | undefined, plan: MailboxBackupPlan): ModelBox {
  const box: ModelBox = dest
    ? { uidValidity: dest.uidValidity, uidNext: dest.uidNext, messages: dest.messages.map((m) => ({ ...m, flags: [...m.flags], keywords: [...m.keywords] })) }
    : { uidValidity: source.uidValidity, uidNext: 1, messages: [] };
  if (plan.rebuild || plan.restamp) {
    box.messages = [];
    box.uidValidity = source.uidValidity;
    box.uidNext = 1;
  }
  for (const u of plan.flagUpdates) {
    const m = box.messages.find((x) => x.uid === u.uid);
    assert.ok(m, `flag update for UID ${u.uid}, which the destination does not hold`);
    m.flags = [...u.flags];
    m.keywords = [...u.keywords];
  }
  for (const uid of plan.expunges) {
    const i = box.messages.findIndex((x) => x.uid === uid);
    assert.ok(i >= 0, `expunge of UID ${uid}, which the destination does not hold`);
    box.messages.splice(i, 1);
  }
  for (const s of plan.saves) {
    const uid = s.uid >= box.uidNext ? s.uid : box.uidNext;
    box.messages.push({ uid, guid: s.guid, flags: [...s.flags], keywords: [...s.keywords], modseq: 1, receivedDate: s.receivedDate, size: s.size });
    box.uidNext = Math.max(box.uidNext, uid + 1);
  }
  box.uidNext = Math.max(box.uidNext, plan.uidNext);
  box.messages.sort((a, b) => a.uid - b.uid);
  return box;
}

/** Independent oracle: can the destination be patched into equality at all? */
function patchable(source: MailboxSide, dest: MailboxSide): boolean {
  if (dest.uidValidity !== source.uidValidity || dest.uidNext > source.uidNext) return false;
  const byUid = new Map(dest.messages.map((m) => [m.uid, m]));
  return source.messages.every((s) => {
    const d = byUid.get(s.uid);
    return d ? d.guid === s.guid : s.uid >= dest.uidNext;
  });
}

// ---------------------------------------------------------------------------------------------
// Examples

test('empty destination: every message saved at its UID, no rebuild', () => {
  const source = side(42, 10, [msg(3, 'g3', ['\\Seen']), msg(1, 'g1'), msg(7, 'g7', [], ['work'])]);
  const plan = planMailboxBackup(source, side(42, 1, []));
  assert.equal(plan.rebuild, false);
  assert.deepEqual(plan.saves.map((s) => [s.uid, s.guid]), [[1, 'g1'], [3, 'g3'], [7, 'g7']]);
  assert.deepEqual(plan.saves[1]!.flags, ['\\Seen']);
  assert.deepEqual(plan.saves[2]!.keywords, ['work']);
  assert.deepEqual(plan.flagUpdates, []);
  assert.deepEqual(plan.expunges, []);
  assert.equal(plan.uidNext, 10);
});

test('missing destination: everything saved, not called a rebuild', () => {
  const source = side(42, 5, [msg(2, 'g2'), msg(4, 'g4')]);
  const plan = planMailboxBackup(source, undefined);
  assert.equal(plan.rebuild, false);
  assert.deepEqual(plan.saves.map((s) => s.uid), [2, 4]);
  assert.equal(plan.uidNext, 5);
});

test('destination equal to the source: empty plan', () => {
  const source = side(7, 9, [msg(1, 'a', ['\\Seen', '\\Flagged'], ['x', 'y']), msg(8, 'b')]);
  // Same content, flags and keywords listed in another order.
  const dest = side(7, 9, [msg(8, 'b'), msg(1, 'a', ['\\Flagged', '\\Seen'], ['y', 'x'])]);
  const plan = planMailboxBackup(source, dest);
  assert.ok(isEmptyPlan(plan), JSON.stringify(plan));
  assert.equal(plan.uidNext, 9);
});

test('flag and keyword differences become complete flag updates', () => {
  const source = side(7, 5, [
    msg(1, 'a', ['\\Seen'], []),
    msg(2, 'b', ['\\Seen', '\\Answered'], ['todo']),
    msg(3, 'c', [], ['x', 'y']),
    msg(4, 'd', ['\\Draft'], ['k']),
  ]);
  const dest = side(7, 5, [
    msg(1, 'a', [], []), // flag added
    msg(2, 'b', ['\\Seen'], ['todo', 'done']), // flag added, keyword removed
    msg(3, 'c', [], ['x', 'z']), // same count, different keyword
    msg(4, 'd', ['\\Draft'], ['k']), // unchanged
  ]);
  const plan = planMailboxBackup(source, dest);
  assert.equal(plan.rebuild, false);
  assert.deepEqual(plan.saves, []);
  assert.deepEqual(plan.expunges, []);
  assert.deepEqual(
    plan.flagUpdates.map((u) => canon({ ...u, guid: '' })),
    [
      { uid: 1, guid: '', flags: ['\\Seen'], keywords: [] },
      { uid: 2, guid: '', flags: ['\\Answered', '\\Seen'], keywords: ['todo'] },
      { uid: 3, guid: '', flags: [], keywords: ['x', 'y'] },
    ],
  );
});

test('messages only the destination holds are expunged; new source messages above UIDNEXT are saved', () => {
  const source = side(7, 12, [msg(1, 'a'), msg(5, 'e'), msg(10, 'j'), msg(11, 'k')]);
  const dest = side(7, 8, [msg(1, 'a'), msg(3, 'c'), msg(5, 'e'), msg(7, 'g')]);
  const plan = planMailboxBackup(source, dest);
  assert.equal(plan.rebuild, false);
  assert.deepEqual(plan.expunges, [3, 7]);
  assert.deepEqual(plan.saves.map((s) => [s.uid, s.guid]), [[10, 'j'], [11, 'k']]);
  assert.deepEqual(plan.flagUpdates, []);
  assert.equal(plan.uidNext, 12);
  const after = applyPlan(source, dest, plan);
  assert.deepEqual(canonAll(after.messages), canonAll(source.messages));
  assert.equal(after.uidNext, 12);
});

test('a source message missing at a UID below the destination UIDNEXT forces a rebuild', () => {
  const source = side(7, 6, [msg(1, 'a'), msg(2, 'b'), msg(5, 'e')]);
  const dest = side(7, 4, [msg(1, 'a')]); // UID 2 was used (and expunged) at the destination
  const plan = planMailboxBackup(source, dest);
  assert.equal(plan.rebuild, true);
  assert.match(plan.rebuildReason ?? '', /UID 2\b.*missing/);
  assert.deepEqual(plan.saves.map((s) => s.uid), [1, 2, 5]);
  assert.deepEqual(plan.expunges, []);
  assert.deepEqual(plan.flagUpdates, []);
});

test('the same UID holding a different GUID forces a rebuild', () => {
  const source = side(7, 4, [msg(1, 'a'), msg(2, 'b'), msg(3, 'c')]);
  const dest = side(7, 4, [msg(1, 'a'), msg(2, 'OTHER'), msg(3, 'c')]);
  const plan = planMailboxBackup(source, dest);
  assert.equal(plan.rebuild, true);
  assert.match(plan.rebuildReason ?? '', /UID 2\b.*different message/);
  assert.deepEqual(plan.saves.map((s) => s.guid), ['a', 'b', 'c']);
});

test('a different UIDVALIDITY forces a rebuild', () => {
  const source = side(100, 3, [msg(1, 'a'), msg(2, 'b')]);
  const dest = side(99, 3, [msg(1, 'a'), msg(2, 'b')]);
  const plan = planMailboxBackup(source, dest);
  assert.equal(plan.rebuild, true);
  assert.match(plan.rebuildReason ?? '', /UIDVALIDITY 99/);
  assert.deepEqual(plan.saves.map((s) => s.uid), [1, 2]);
  const after = applyPlan(source, dest, plan);
  assert.equal(after.uidValidity, 100);
  assert.deepEqual(canonAll(after.messages), canonAll(source.messages));
});

test('a destination UIDNEXT above the source one forces a rebuild', () => {
  const source = side(7, 3, [msg(1, 'a'), msg(2, 'b')]);
  const dest = side(7, 5, [msg(1, 'a'), msg(2, 'b')]);
  const plan = planMailboxBackup(source, dest);
  assert.equal(plan.rebuild, true);
  assert.match(plan.rebuildReason ?? '', /UIDNEXT 5/);
  const after = applyPlan(source, dest, plan);
  assert.equal(after.uidNext, 3);
  assert.ok(isEmptyPlan(planMailboxBackup(source, after)));
});

test('a destination behind the source only raises UIDNEXT', () => {
  const source = side(7, 20, [msg(1, 'a')]);
  const dest = side(7, 2, [msg(1, 'a')]);
  const plan = planMailboxBackup(source, dest);
  assert.ok(isEmptyPlan(plan));
  assert.equal(plan.uidNext, 20);
});

// ---------------------------------------------------------------------------------------------
// Property

const KEYWORD_POOL = Array.from({ length: 32 }, (_, i) => `$kw${String(i).padStart(2, '0')}`);
const flagsArb = fc.shuffledSubarray([...SYSTEM_FLAGS]);
// Mostly a few keywords; sometimes more than the 26 a Maildir filename can letter.
const keywordsArb = fc.oneof(
  { weight: 4, arbitrary: fc.shuffledSubarray(KEYWORD_POOL.slice(0, 6)) },
  { weight: 1, arbitrary: fc.shuffledSubarray(KEYWORD_POOL, { minLength: 27 }) },
);
const hex = fc.stringMatching(/^[0-9a-f]{8}$/);

const sourceArb: fc.Arbitrary<MailboxSide> = fc
  .record({
    uidValidity: fc.integer({ min: 1, max: 0xffffffff }),
    messages: fc.uniqueArray(
      fc.record({ uid: fc.integer({ min: 1, max: 40 }), guid: hex, flags: flagsArb, keywords: keywordsArb }, { noNullPrototype: true }),
      { selector: (m) => m.uid, maxLength: 15 },
    ),
    slack: fc.nat(4),
  })
  .map(({ uidValidity, messages, slack }) => {
    const sorted = [...messages].sort((a, b) => a.uid - b.uid);
    const max = sorted.length > 0 ? sorted[sorted.length - 1]!.uid : 0;
    return side(
      uidValidity,
      max + 1 + slack,
      // The UID in the GUID keeps GUIDs unique within the mailbox.
      sorted.map((m) => msg(m.uid, `${m.guid}-${m.uid}`, m.flags, m.keywords)),
    );
  });

type DestOp =
  | { op: 'drop'; i: number }
  | { op: 'flags'; i: number; flags: SystemFlag[]; keywords: string[] }
  | { op: 'replaceOne'; i: number; keyword: boolean; at: number; by: number }
  | { op: 'extraAbove'; gap: number; flags: SystemFlag[] }
  | { op: 'extraBelow'; uid: number }
  | { op: 'rewind'; to: number }
  | { op: 'bumpUidNext'; by: number }
  | { op: 'uidValidity'; delta: number }
  | { op: 'swapGuids'; i: number; j: number }
  | { op: 'newGuid'; i: number };

const opArb: fc.Arbitrary<DestOp> = fc.oneof(
  fc.record({ op: fc.constant('drop' as const), i: fc.nat() }, { noNullPrototype: true }),
  // Weighted up: the drifts a patch (not a rebuild) can repair.
  { arbitrary: fc.record({ op: fc.constant('flags' as const), i: fc.nat(), flags: flagsArb, keywords: keywordsArb }, { noNullPrototype: true }), weight: 8 },
  // Same number of flags (or keywords), one of them different: only a set comparison sees it.
  { arbitrary: fc.record({ op: fc.constant('replaceOne' as const), i: fc.nat(), keyword: fc.boolean(), at: fc.nat(), by: fc.nat() }, { noNullPrototype: true }), weight: 4 },
  fc.record({ op: fc.constant('extraAbove' as const), gap: fc.nat(3), flags: flagsArb }, { noNullPrototype: true }),
  { arbitrary: fc.record({ op: fc.constant('extraBelow' as const), uid: fc.integer({ min: 1, max: 45 }) }, { noNullPrototype: true }), weight: 5 },
  // A backup taken earlier: nothing at or above `to`, UIDNEXT `to`. This is what makes plans
  // that save without rebuilding.
  { arbitrary: fc.record({ op: fc.constant('rewind' as const), to: fc.integer({ min: 1, max: 45 }) }, { noNullPrototype: true }), weight: 6 },
  fc.record({ op: fc.constant('bumpUidNext' as const), by: fc.integer({ min: 1, max: 5 }) }, { noNullPrototype: true }),
  fc.record({ op: fc.constant('uidValidity' as const), delta: fc.integer({ min: 1, max: 1000 }) }, { noNullPrototype: true }),
  fc.record({ op: fc.constant('swapGuids' as const), i: fc.nat(), j: fc.nat() }, { noNullPrototype: true }),
  fc.record({ op: fc.constant('newGuid' as const), i: fc.nat() }, { noNullPrototype: true }),
);

/** A destination that starts as an exact copy of the source, then drifts. Always store-consistent: UIDNEXT > every UID. */
function deriveDest(source: MailboxSide, ops: readonly DestOp[]): MailboxSide {
  let uidValidity = source.uidValidity;
  let uidNext = source.uidNext;
  let messages = source.messages.map((m) => ({ ...m, flags: [...m.flags], keywords: [...m.keywords] }));
  let fresh = 0;
  const pick = (i: number) => (messages.length > 0 ? i % messages.length : -1);
  for (const o of ops) {
    switch (o.op) {
      case 'drop': {
        const i = pick(o.i);
        if (i >= 0) messages.splice(i, 1);
        break;
      }
      case 'flags': {
        const i = pick(o.i);
        if (i >= 0) messages[i] = { ...messages[i]!, flags: o.flags, keywords: o.keywords };
        break;
      }
      case 'replaceOne': {
        const i = pick(o.i);
        if (i < 0) break;
        const m = messages[i]!;
        if (o.keyword) {
          const unused = KEYWORD_POOL.filter((k) => !m.keywords.includes(k));
          if (m.keywords.length === 0 || unused.length === 0) break;
          const keywords = [...m.keywords];
          keywords[o.at % keywords.length] = unused[o.by % unused.length]!;
          messages[i] = { ...m, keywords };
        } else {
          const unused = SYSTEM_FLAGS.filter((f) => !m.flags.includes(f));
          if (m.flags.length === 0 || unused.length === 0) break;
          const flags = [...m.flags];
          flags[o.at % flags.length] = unused[o.by % unused.length]!;
          messages[i] = { ...m, flags };
        }
        break;
      }
      case 'extraAbove': {
        const uid = uidNext + o.gap;
        messages.push(msg(uid, `extra-${++fresh}`, o.flags));
        uidNext = uid + 1;
        break;
      }
      case 'extraBelow': {
        if (o.uid < uidNext && !messages.some((m) => m.uid === o.uid)) messages.push(msg(o.uid, `extra-${++fresh}`));
        break;
      }
      case 'rewind': {
        if (o.to <= uidNext) {
          messages = messages.filter((m) => m.uid < o.to);
          uidNext = o.to;
        }
        break;
      }
      case 'bumpUidNext':
        uidNext += o.by;
        break;
      case 'uidValidity':
        uidValidity = ((uidValidity - 1 + o.delta) % 0xffffffff) + 1;
        break;
      case 'swapGuids': {
        const i = pick(o.i);
        const j = pick(o.j);
        if (i >= 0 && j >= 0 && i !== j) {
          const gi = messages[i]!.guid;
          messages[i] = { ...messages[i]!, guid: messages[j]!.guid };
          messages[j] = { ...messages[j]!, guid: gi };
        }
        break;
      }
      case 'newGuid': {
        const i = pick(o.i);
        if (i >= 0) messages[i] = { ...messages[i]!, guid: `other-${++fresh}` };
        break;
      }
    }
  }
  messages.sort((a, b) => a.uid - b.uid);
  return side(uidValidity, uidNext, messages);
}

test('property: applying the plan makes the destination equal to the source, and a second plan is empty', () => {
  fc.assert(
    fc.property(
      sourceArb,
      fc.option(fc.array(opArb, { maxLength: 6 }), { nil: undefined, freq: 8 }),
      fc.boolean(),
      (source, ops, shuffle) => {
        const dest = ops === undefined ? undefined : deriveDest(source, ops);
        // Stores return messages sorted by UID, but the planner must not depend on it.
        const input = dest && shuffle ? { ...dest, messages: [...dest.messages].reverse() } : dest;
        const plan = planMailboxBackup(source, input);

        // Rebuild exactly when patching cannot work, and always with a reason.
        // An empty destination that cannot be patched is only re-stamped: there is nothing to rebuild.
        const unpatchable = dest !== undefined && !patchable(source, dest);
        const mustRebuild = unpatchable && dest.messages.length > 0;
        assert.equal(plan.restamp === true, unpatchable && !mustRebuild, 'restamp exactly for an empty, unpatchable destination');
        assert.equal(plan.rebuild, mustRebuild, `rebuild ${plan.rebuild}: ${plan.rebuildReason ?? ''}`);
        if (plan.rebuild) assert.ok(plan.rebuildReason && plan.rebuildReason.length > 0, 'rebuild without a reason');

        // No needless copies: never save what the destination already holds at that UID.
        if (dest && !plan.rebuild) {
          const held = new Set(dest.messages.map((m) => `${m.uid}\u0000${m.guid}`));
          for (const s of plan.saves) assert.ok(!held.has(`${s.uid}\u0000${s.guid}`), `needless save of UID ${s.uid}`);
          // Saves are asked for in UID order, all at or above UIDNEXT, so every wanted UID is honoured.
          for (let k = 1; k < plan.saves.length; k++) assert.ok(plan.saves[k - 1]!.uid < plan.saves[k]!.uid);
        }

        const after = applyPlan(source, dest, plan);
        assert.deepEqual(canonAll(after.messages), canonAll(source.messages));
        assert.equal(after.uidValidity, source.uidValidity);
        if (!plan.rebuild) assert.equal(after.uidNext, source.uidNext);
        // A rebuild restarts UIDs, so it ends at the source's UIDNEXT as well.
        assert.equal(after.uidNext, source.uidNext);

        const again = planMailboxBackup(source, after);
        assert.ok(isEmptyPlan(again), `second plan not empty: ${JSON.stringify(again)}`);
      },
    ),
    { numRuns: 300, includeErrorInReport: true },
  );
});
