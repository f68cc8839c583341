/**
 * Planning one mailbox of a two-way sync (or a one-way merge, `sync -1`): pure, no I/O.
 *
 * The rules are dsync's: messages match by GUID; an expunge travels only when the other
 * side's expunge log names the GUID (otherwise the mail is kept); a message whose UID the
 * other side cannot take (below its UIDNEXT, or held by a different message) gets a new UID
 * above both UIDNEXTs on both sides; flags follow the side that changed them since the last
 * sync of the pair. When both did, each flag follows the side that changed it, measured
 * against the flags both agreed on last time (the base). Without a base (a first sync, or a
 * store that keeps none) nothing says which flags each side changed, so the side whose flags
 * changed later wins whole, by the change times both stores gave; where either gave none
 * (IMAP, mbox) or the times are equal, the first side, the master, wins. Both directions of
 * the same pair plan the same end state.
 *
 * When a side hands out its own UIDs (an IMAP server), UIDs cannot be made equal, so they stop
 * being part of the goal: messages match by GUID wherever they sit, nothing is renumbered, and
 * a copy keeps its UID only where the receiving side can take it.
 */
import { SYSTEM_FLAGS, type FlagUpdate, type MessageMeta, type SyncedFlags } from '../storage/store.js';
import { copyIndexOf, distinguishCopies, guidOf } from './copies.js';
import { sameFlags } from './mailbox-plan.js';

export interface SyncSide {
  uidValidity: number;
  uidNext: number;
  messages: readonly MessageMeta[];
  /**
   * This side's expunges that count as proof, as GUID -> the UIDs it was expunged at: each
   * proves the deletion of that message instance, not of every message with the GUID.
   */
  expunged: ReadonlyMap<string, readonly number[]>;
  /**
   * This side's UIDNEXT at the last sync of the pair. One way, a source message below it that
   * the destination lacks is one the destination deleted (it held everything then).
   */
  syncedUidNext?: number;
  /** This side's HIGHESTMODSEQ at the last sync of the pair; undefined when there was none. */
  syncedModseq?: number;
  /**
   * GUIDs name message contents (native GUIDs): two UIDs with one GUID are one message held
   * twice, which only an interrupted renumbering leaves behind. Not so for header hashes.
   */
  uniqueGuids?: boolean;
  /**
   * When this side's flags of a message last changed (UID -> ms since the epoch), for the
   * messages no base decides; absent when the store cannot tell.
   */
  flagsChangedAt?: ReadonlyMap<number, number>;
}

export interface SyncSave {
  /** The UID to save at; undefined: whatever the receiving side hands out. */
  uid?: number;
  /** Where the body is read from: this side (a renumbered message) or the other. */
  from: 'self' | 'peer';
  fromUid: number;
  guid: string;
  flags: MessageMeta['flags'];
  keywords: string[];
  receivedDate: number;
  size: number;
}

export interface SideActions {
  saves: SyncSave[];
  expunges: number[];
  flagUpdates: FlagUpdate[];
}

export interface TwoWayPlan {
  a: SideActions;
  b: SideActions;
  /** Both sides' UIDNEXT must reach at least this. */
  uidNext: number;
  /**
   * Which sides' UIDNEXT is below `uidNext` now. Raising it is work of its own: a side that
   * expunged its newest mail before the other saw it has used UIDs the other has not, and the
   * other must not hand them out again (the plan is not empty then, though it saves nothing).
   */
  raiseUidNext: { a: boolean; b: boolean };
}

export type MergeMode = 'twoway' | 'oneway';

type Bases = ReadonlyMap<string, SyncedFlags>;
type FlagSet = Pick<MessageMeta, 'flags' | 'keywords'>;

function changedSince(m: MessageMeta, since: number | undefined): boolean {
  return since === undefined || m.modseq > since;
}

const empty = (): SideActions => ({ saves: [], expunges: [], flagUpdates: [] });

/**
 * `oneway`: merge A into B (`sync -1`): B gains A's messages and flag changes, nothing is
 * expunged in B, and A is never touched.
 */
/**
 * `bases`: the flags both sides agreed on at the last sync, by GUID, for messages both changed
 * since; with a base, such a conflict merges flag by flag instead of one side winning whole.
 */
export function planTwoWay(a: SyncSide, b: SyncSide, mode: MergeMode = 'twoway', equalUids = true, bases: Bases = new Map()): TwoWayPlan {
  if (!equalUids) return planByGuid(keyCopies(a), keyCopies(b), mode, bases);
  const plan: TwoWayPlan = { a: empty(), b: empty(), uidNext: Math.max(a.uidNext, b.uidNext), raiseUidNext: { a: false, b: false } };
  if (mode === 'twoway') {
    [a, b] = [finishRenumbering(a, b, plan.a), finishRenumbering(b, a, plan.b)];
    [a, b] = [withoutCopiesDeletedThere(a, b, plan.a), withoutCopiesDeletedThere(b, a, plan.b)];
  }
  a = keyCopies(a);
  b = keyCopies(b);
  const byGuidA = new Map(a.messages.map((m) => [m.guid, m]));
  const byGuidB = new Map(b.messages.map((m) => [m.guid, m]));
  const uidsB = new Map(b.messages.map((m) => [m.uid, m]));
  const uidsA = new Map(a.messages.map((m) => [m.uid, m]));
  const oneway = mode === 'oneway';
  // One way, B's expunge cannot name A's UID: a message `sync -1` had to renumber sits at another
  // UID in B for good, so B's deletion of it is proven by GUID, copy by copy, as dsync proves it.
  const [goneAtA, goneAtB] = [deletionProof(a, true), deletionProof(b, !oneway)];

  // Messages that need a UID neither side has used, in an order both directions agree on.
  const renumber: { guid: string; ma?: MessageMeta; mb?: MessageMeta }[] = [];

  for (const ma of a.messages) {
    const mb = byGuidB.get(ma.guid);
    if (mb) {
      if (mb.uid === ma.uid) {
        flagMerge(ma, mb, a, b, plan, oneway, bases);
      } else if (!oneway) {
        renumber.push({ guid: ma.guid, ma, mb });
      } else {
        flagMerge(ma, mb, a, b, plan, oneway, bases);
      }
      continue;
    }
    if (!oneway && goneAtB(ma)) {
      plan.a.expunges.push(ma.uid); // proven deleted on B; deletion wins over any flag change
      continue;
    }
    // One way, the destination's own deletions are never brought back.
    if (oneway && (goneAtB(ma) || (a.syncedUidNext !== undefined && ma.uid < a.syncedUidNext))) continue;
    const clash = uidsB.get(ma.uid);
    if (ma.uid >= b.uidNext && !clash) {
      plan.b.saves.push(save(ma, ma.uid, 'peer'));
    } else {
      renumber.push({ guid: ma.guid, ma });
      // Two messages claiming one UID both get new ones; one way, in the destination only.
      if (oneway && clash && !byGuidA.has(clash.guid)) renumber.push({ guid: clash.guid, mb: clash });
    }
  }
  if (!oneway) {
    for (const mb of b.messages) {
      if (byGuidA.has(mb.guid)) continue;
      if (goneAtA(mb)) {
        plan.b.expunges.push(mb.uid);
        continue;
      }
      const clash = uidsA.get(mb.uid);
      if (mb.uid >= a.uidNext && !clash) plan.a.saves.push(save(mb, mb.uid, 'peer'));
      else renumber.push({ guid: mb.guid, mb });
    }
  }

  renumber.sort((x, y) => (x.guid < y.guid ? -1 : x.guid > y.guid ? 1 : (x.ma?.uid ?? x.mb!.uid) - (y.ma?.uid ?? y.mb!.uid)));
  let next = plan.uidNext;
  for (const r of renumber) {
    const uid = next++;
    if (oneway) {
      plan.b.saves.push(r.ma ? save(r.ma, uid, 'peer') : save(r.mb!, uid, 'self'));
      if (!r.ma) plan.b.expunges.push(r.mb!.uid);
      continue;
    }
    // Both copies move to the new UID; the flags come from the merge of the two when both exist.
    const flagsFrom = r.ma && r.mb ? mergedFlags(r.ma, r.mb, a, b, bases) : (r.ma ?? r.mb)!;
    if (r.ma) {
      plan.a.saves.push({ ...save(r.ma, uid, 'self'), flags: [...flagsFrom.flags], keywords: [...flagsFrom.keywords] });
      plan.a.expunges.push(r.ma.uid);
    } else {
      plan.a.saves.push(save(r.mb!, uid, 'peer'));
    }
    if (r.mb) {
      plan.b.saves.push({ ...save(r.mb, uid, 'self'), flags: [...flagsFrom.flags], keywords: [...flagsFrom.keywords] });
      plan.b.expunges.push(r.mb.uid);
    } else {
      plan.b.saves.push(save(r.ma!, uid, 'peer'));
    }
  }
  plan.uidNext = Math.max(plan.uidNext, next);
  plan.raiseUidNext = { a: !oneway && a.uidNext < plan.uidNext, b: b.uidNext < plan.uidNext };
  for (const side of [plan.a, plan.b]) {
    side.saves.sort((x, y) => x.uid! - y.uid!);
    side.expunges.sort((x, y) => x - y);
  }
  return plan;
}

/** The plan when UIDs need not match: GUIDs alone decide. */
function planByGuid(a: SyncSide, b: SyncSide, mode: MergeMode, bases: Bases): TwoWayPlan {
  const plan: TwoWayPlan = { a: empty(), b: empty(), uidNext: Math.max(a.uidNext, b.uidNext), raiseUidNext: { a: false, b: false } };
  const oneway = mode === 'oneway';
  const byGuidB = new Map(b.messages.map((m) => [m.guid, m]));
  const byGuidA = new Map(a.messages.map((m) => [m.guid, m]));
  const freeUid = (uid: number, to: SyncSide, taken: Map<number, MessageMeta>) => (uid >= to.uidNext && !taken.has(uid) ? uid : undefined);
  const uidsA = new Map(a.messages.map((m) => [m.uid, m]));
  const uidsB = new Map(b.messages.map((m) => [m.uid, m]));
  const [goneAtA, goneAtB] = [deletionProof(a, false), deletionProof(b, false)];
  for (const ma of a.messages) {
    const mb = byGuidB.get(ma.guid);
    if (mb) flagMerge(ma, mb, a, b, plan, oneway, bases);
    else if (!oneway && goneAtB(ma)) plan.a.expunges.push(ma.uid);
    else plan.b.saves.push(save(ma, freeUid(ma.uid, b, uidsB), 'peer'));
  }
  if (!oneway) {
    for (const mb of b.messages) {
      if (byGuidA.has(mb.guid)) continue;
      if (goneAtA(mb)) plan.b.expunges.push(mb.uid);
      else plan.a.saves.push(save(mb, freeUid(mb.uid, a, uidsA), 'peer'));
    }
  }
  for (const side of [plan.a, plan.b]) {
    side.saves.sort((x, y) => (x.uid ?? Infinity) - (y.uid ?? Infinity) || x.fromUid - y.fromUid);
    side.expunges.sort((x, y) => x - y);
  }
  return plan;
}

/**
 * A renumbering saves the copy at its new UID before it expunges the old one, so a crash can
 * leave one message at two UIDs. The copy at the higher UID is the new one: keep it, finish
 * the move by expunging the rest, and plan with the message once.
 */
function finishRenumbering(side: SyncSide, other: SyncSide, actions: SideActions): SyncSide {
  if (!side.uniqueGuids) return side;
  const newest = new Map<string, MessageMeta>();
  for (const m of side.messages) {
    const seen = newest.get(m.guid);
    if (!seen || m.uid > seen.uid) newest.set(m.guid, m);
  }
  if (newest.size === side.messages.length) return side;
  // A GUID adopted from a store without GUIDs names a header hash, which two different messages
  // can share (a post that reached two lists): only a copy of the very same size is a leftover.
  // And a store without GUIDs calls a message it holds twice (delivered twice) by one hash, so
  // both copies came here under it: where that side holds the GUID at both UIDs too, the two
  // sides agree on two messages, and taking one for a leftover dropped it here and brought it
  // back from there, renumbering both on every run.
  const held = other.uniqueGuids ? undefined : new Set(other.messages.map((m) => `${m.uid} ${m.guid}`));
  const mirrored = (m: MessageMeta) => held !== undefined && held.has(`${m.uid} ${m.guid}`) && held.has(`${newest.get(m.guid)!.uid} ${m.guid}`);
  const leftover = (m: MessageMeta) => newest.get(m.guid) !== m && newest.get(m.guid)!.size === m.size && !mirrored(m);
  actions.expunges.push(...side.messages.filter(leftover).map((m) => m.uid));
  return { ...side, messages: side.messages.filter((m) => !leftover(m)) };
}

/**
 * One of the copies of a GUID held twice deleted on the other side: that side expunged the GUID
 * at this UID and holds it only at UIDs where this side holds it too, so it moved nothing (a
 * renumbering leaves the GUID at a UID this side lacks): the copy here goes as well. Copies are
 * otherwise paired by their order, which would pair the survivor there with the deleted one
 * here, and the expunge alone proves nothing while the other side still holds the GUID.
 */
function withoutCopiesDeletedThere(side: SyncSide, other: SyncSide, actions: SideActions): SyncSide {
  if (!side.uniqueGuids || !other.uniqueGuids || other.expunged.size === 0) return side;
  const uidsByGuid = (s: SyncSide) => {
    const out = new Map<string, Set<number>>();
    for (const m of s.messages) out.set(m.guid, (out.get(m.guid) ?? new Set()).add(m.uid));
    return out;
  };
  const [here, there] = [uidsByGuid(side), uidsByGuid(other)];
  const deleted = (m: MessageMeta) => {
    const mine = here.get(m.guid)!;
    const theirs = there.get(m.guid);
    if (mine.size < 2 || !theirs || theirs.has(m.uid) || !other.expunged.get(m.guid)?.includes(m.uid)) return false;
    return [...theirs].every((u) => mine.has(u));
  };
  const gone = side.messages.filter(deleted);
  if (gone.length === 0) return side;
  actions.expunges.push(...gone.map((m) => m.uid));
  const dropped = new Set(gone.map((m) => m.uid));
  return { ...side, messages: side.messages.filter((m) => !dropped.has(m.uid)) };
}

const keyCopies = (side: SyncSide): SyncSide => ({ ...side, messages: distinguishCopies(side.messages) });

/**
 * Whether `side`'s expunge log proves the deletion of the other side's message `m`: an expunge
 * proves the deletion of one message instance, not of every message with the GUID. Where GUIDs
 * name contents, a side that still holds the GUID only moved it (a renumbering) or dropped a
 * second copy, so nothing is proven. Where UIDs are kept equal the expunged instance is the
 * one at the same UID; elsewhere the n-th unmatched copy of a GUID is proven only when the side
 * expunged at least n copies beyond those it still holds.
 */
function deletionProof(side: SyncSide, equalUids: boolean): (m: MessageMeta) => boolean {
  const held = new Map<string, number>();
  for (const x of side.messages) held.set(guidOf(x.guid), (held.get(guidOf(x.guid)) ?? 0) + 1);
  return (m) => {
    const guid = guidOf(m.guid);
    const uids = side.expunged.get(guid);
    const holds = held.get(guid) ?? 0;
    if (!uids || (side.uniqueGuids && holds > 0)) return false;
    return equalUids ? uids.includes(m.uid) : copyIndexOf(m.guid) < holds + uids.length;
  };
}

function save(m: MessageMeta, uid: number | undefined, from: 'self' | 'peer'): SyncSave {
  return { uid, from, fromUid: m.uid, guid: guidOf(m.guid), flags: [...m.flags], keywords: [...m.keywords], receivedDate: m.receivedDate, size: m.size };
}

/** The flags both copies end with. */
function mergedFlags(ma: MessageMeta, mb: MessageMeta, a: SyncSide, b: SyncSide, bases: Bases): FlagSet {
  if (sameFlags(ma, mb)) return ma;
  const changedA = changedSince(ma, a.syncedModseq);
  const changedB = changedSince(mb, b.syncedModseq);
  if (changedB && !changedA) return mb;
  if (changedA && !changedB) return ma;
  const base = bases.get(ma.guid);
  // Both changed: with the agreed base each flag follows the side that changed it (a flag both
  // changed was changed the same way, a flag is only on or off); without one, the later change.
  if (base) return threeWay(ma, mb, base);
  return changedLater(ma, mb, a, b) === 'b' ? mb : ma;
}

/**
 * Which side's flags of this message changed later, when both stores told: the clock of one
 * machine, so the two compare (modseqs never do). Undefined on a tie or a missing time.
 */
function changedLater(ma: MessageMeta, mb: MessageMeta, a: SyncSide, b: SyncSide): 'a' | 'b' | undefined {
  const ta = a.flagsChangedAt?.get(ma.uid);
  const tb = b.flagsChangedAt?.get(mb.uid);
  if (ta === undefined || tb === undefined || ta === tb) return undefined;
  return ta > tb ? 'a' : 'b';
}

function threeWay(ma: FlagSet, mb: FlagSet, base: FlagSet): FlagSet {
  const pick = <T>(all: Iterable<T>, inA: Set<T>, inB: Set<T>, inBase: Set<T>) =>
    [...new Set(all)].filter((x) => (inA.has(x) !== inBase.has(x) ? inA.has(x) : inB.has(x)));
  const flags = pick([...ma.flags, ...mb.flags, ...base.flags], new Set(ma.flags), new Set(mb.flags), new Set(base.flags));
  const keywords = pick([...ma.keywords, ...mb.keywords, ...base.keywords], new Set(ma.keywords), new Set(mb.keywords), new Set(base.keywords));
  flags.sort((x, y) => SYSTEM_FLAGS.indexOf(x) - SYSTEM_FLAGS.indexOf(y));
  return { flags, keywords: keywords.sort() };
}

function flagMerge(ma: MessageMeta, mb: MessageMeta, a: SyncSide, b: SyncSide, plan: TwoWayPlan, oneway: boolean, bases: Bases): void {
  if (sameFlags(ma, mb)) return;
  if (oneway) {
    // A's changes flow into B; B's own changes stay when A did not touch the message. With a
    // base (A's flags when B last took them) each flag A changed since follows A and every
    // other flag stays as B has it, as dsync applies A's flag changes rather than its flags;
    // with none, A's flags go whole unless B changed the message later.
    if (!changedSince(ma, a.syncedModseq)) return;
    const base = bases.get(ma.guid);
    if (!base && changedSince(mb, b.syncedModseq) && changedLater(ma, mb, a, b) === 'b') return;
    const wanted = base ? threeWay(ma, mb, base) : ma;
    if (!sameFlags(mb, wanted)) plan.b.flagUpdates.push({ uid: mb.uid, flags: [...wanted.flags], keywords: [...wanted.keywords] });
    return;
  }
  const merged = mergedFlags(ma, mb, a, b, bases);
  if (!sameFlags(ma, merged)) plan.a.flagUpdates.push({ uid: ma.uid, flags: [...merged.flags], keywords: [...merged.keywords] });
  if (!sameFlags(mb, merged)) plan.b.flagUpdates.push({ uid: mb.uid, flags: [...merged.flags], keywords: [...merged.keywords] });
}

/** Messages both sides changed since the last sync, with different flags: where a base decides. */
export function flagConflicts(a: SyncSide, b: SyncSide): string[] {
  return differingFlags(a, b).filter(([ma, mb]) => changedSince(ma, a.syncedModseq) && changedSince(mb, b.syncedModseq)).map(([ma]) => ma.guid);
}

/**
 * Messages whose flag merge a base decides: two-way those both sides changed; one way every
 * message A changed, since B's own changes, older or newer, are kept flag by flag against it.
 */
export function flagsNeedingBase(a: SyncSide, b: SyncSide, mode: MergeMode): string[] {
  if (mode === 'twoway') return flagConflicts(a, b);
  return differingFlags(a, b).filter(([ma]) => changedSince(ma, a.syncedModseq)).map(([ma]) => ma.guid);
}

function differingFlags(a: SyncSide, b: SyncSide): [MessageMeta, MessageMeta][] {
  const byGuidB = new Map(b.messages.map((m) => [m.guid, m]));
  return a.messages.flatMap((ma): [MessageMeta, MessageMeta][] => {
    const mb = byGuidB.get(ma.guid);
    return mb !== undefined && !sameFlags(ma, mb) ? [[ma, mb]] : [];
  });
}

export function isEmptyTwoWay(plan: TwoWayPlan): boolean {
  return (
    !plan.raiseUidNext.a &&
    !plan.raiseUidNext.b &&
    [plan.a, plan.b].every((s) => s.saves.length === 0 && s.expunges.length === 0 && s.flagUpdates.length === 0)
  );
}
