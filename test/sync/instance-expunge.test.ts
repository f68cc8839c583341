/**
 * An expunge proves the deletion of one message instance (its UID under this UIDVALIDITY), not
 * of every message with its GUID: a renumbering (save at a new UID, expunge the old one) and a
 * second copy expunged once never delete mail on the other side.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { MessageMeta } from '../../src/storage/store.js';
import { planTwoWay, type SyncSide } from '../../src/sync/twoway-plan.js';

const msg = (uid: number, guid: string): MessageMeta => ({ uid, guid, flags: [], keywords: [], modseq: 1, receivedDate: 0, size: 10 });
const side = (uidNext: number, messages: MessageMeta[], expunged: [string, number[]][], uniqueGuids = true): SyncSide => ({
  uidValidity: 1,
  uidNext,
  messages,
  expunged: new Map(expunged),
  uniqueGuids,
});

it('a GUID expunged at one UID does not delete the other side\'s copy at another UID', () => {
  // A moved g from 5 to 9 while B got it at 7 (another clash): A then lost its copy.
  const plan = planTwoWay(side(10, [], [['g', [5]]]), side(10, [msg(7, 'g')], []));
  // 7 is below A's UIDNEXT, so B's copy moves to a fresh UID on both sides: moved, not deleted.
  assert.deepEqual(plan.a.saves.map((s) => [s.guid, s.uid]), [['g', 10]]);
  assert.deepEqual(plan.b.saves.map((s) => [s.guid, s.uid, s.from]), [['g', 10, 'self']]);
});

it('the same instance expunged is deleted on the other side', () => {
  const plan = planTwoWay(side(10, [], [['g', [7]]]), side(10, [msg(7, 'g')], []));
  assert.deepEqual(plan.b.expunges, [7]);
});

it('a side that still holds the GUID proves no deletion of the other side\'s second copy', () => {
  // Without equal UIDs (a server picks its own), GUIDs alone decide.
  const a = side(20, [msg(12, 'g')], [['g', [5]]]);
  const b = side(20, [msg(3, 'g'), msg(4, 'g')], []);
  const plan = planTwoWay(a, b, 'twoway', false);
  assert.deepEqual(plan.b.expunges, []);
});

it('copies of a header hash: one copy expunged deletes one copy elsewhere, not both', () => {
  const a = side(20, [msg(12, 'h')], [['h', [5]]], false);
  const b = side(20, [msg(3, 'h'), msg(4, 'h'), msg(6, 'h')], [], false);
  const plan = planTwoWay(a, b, 'twoway', false);
  assert.equal(plan.b.expunges.length, 1);
});
