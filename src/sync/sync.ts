/**
 * Two-way sync and one-way merge (`sync -1`) between two stores. Plans come from the pure
 * planners (tree-twoway.ts, twoway-plan.ts); this file applies them, streaming bodies, and
 * remembers per mailbox what both sides looked like afterwards (the pair state), which is
 * what lets the next run skip unchanged mailboxes and tell whose flag change is newer.
 */
import type { Readable } from 'node:stream';
import { MailferryError } from '../model/errors.js';
import { failpoint } from '../model/failpoint.js';
import type { MailboxChanges, MailboxName, MailboxStatus, MailStore, MessageMeta, PairState, SaveRequest, SyncedFlags } from '../storage/store.js';
import { planMailboxBackup, sameFlags } from './mailbox-plan.js';
import type { MessageFilter } from './message-filter.js';
import { distinguishCopies, gotWantedUids, guidOf, keyOfStored, savedBytes, storedKeyOf } from './copies.js';
import { expungedInstances, matchByHeaderHash } from './hash-match.js';
import { planTreeTwoWay, type SeenUpTo, type SideTreeAction } from './tree-twoway.js';
import { describeUnholdable, unholdableIn, withoutUnholdable } from './unholdable.js';
import { isProven, mirror, pairStateOf, proven as provenState, unchangedSince, unproven } from './pair-state.js';
import { NameTranslation, specialUsePairsFor, translatedFilter } from './special-use-names.js';
import { translatedList, translatedStore } from './translated-store.js';
import { withFlagChangeTimes } from './flag-change-times.js';
import { changedListings } from './incremental.js';
import { flagConflicts, flagsNeedingBase, isEmptyTwoWay, planTwoWay, type MergeMode, type SideActions, type SyncSide, type TwoWayPlan } from './twoway-plan.js';

export interface SyncOptions {
  mode?: MergeMode;
  /** Compare every mailbox, even those whose status says nothing changed since the last sync. */
  full?: boolean;
  dryRun?: boolean;
  /** Sync the mailbox list (creates, renames, deletes, subscriptions) and no messages. */
  treeOnly?: boolean;
  /** Which mailboxes to touch (all when absent); see mailbox-filter.ts. */
  include?: (mailbox: MailboxStatus) => boolean;
  /** Only messages it accepts are copied to the other side (-t, -e, -O, -I). */
  messageFilter?: MessageFilter;
  /** A pair state given by the caller (`-s`), used instead of what the indexes remember. */
  state?: PairState;
  /**
   * List every changed mailbox whole instead of reading only what changed since the last
   * proven sync (incremental.ts); what `-f` does for changed mailboxes, without comparing the
   * unchanged ones. For checking the incremental path against the whole comparison.
   */
  noIncremental?: boolean;
  onEvent?: (event: SyncEvent) => void;
}

export type SyncEvent =
  | { type: 'tree'; side: 'a' | 'b'; action: SideTreeAction }
  | { type: 'mailbox'; name: MailboxName; plan: TwoWayPlan }
  | { type: 'skipped-mailbox'; name: MailboxName }
  /** `uid` is undefined where the receiving store hands out UIDs itself. */
  | { type: 'saved'; name: MailboxName; uid: number | undefined; size: number }
  | { type: 'warning'; message: string };

export interface SyncResult {
  mailboxes: number;
  skipped: number;
  treeActions: number;
  saved: number;
  bytes: number;
  flagUpdates: number;
  expunged: number;
  changedDuringSync: boolean;
  /**
   * Mailboxes left out because one side cannot hold them, or with entries a side will not
   * read (a link, a FIFO, a file name it cannot keep), each warned of: not all is in sync.
   */
  incomplete: boolean;
  /** The pair state after the run, as seen from the first store (for `-s`). */
  state: PairState;
}

/** Drops copies of messages the filter rejects; renumbering a side's own messages stays. */
function filtered(plan: TwoWayPlan, filter: MessageFilter | undefined): TwoWayPlan {
  if (!filter) return plan;
  const keep = (s: SideActions): SideActions => ({
    ...s,
    saves: s.saves.filter((x) => x.from === 'self' || filter({ uid: x.fromUid, guid: x.guid, flags: x.flags, keywords: x.keywords, modseq: 0, receivedDate: x.receivedDate, size: x.size })),
  });
  return { ...plan, a: keep(plan.a), b: keep(plan.b) };
}

function isMissing(err: unknown): boolean {
  return err instanceof MailferryError && err.kind === 'notfound';
}

async function applyTree(store: MailStore, action: SideTreeAction): Promise<void> {
  switch (action.type) {
    case 'create':
      await store.createMailbox(action.name, { guid: action.guid, uidValidity: action.uidValidity, specialUse: action.specialUse });
      return;
    case 'rename': {
      // An earlier rename of a parent may already have carried this one along.
      const now = (await store.listMailboxes()).mailboxes.find((m) => m.guid === action.guid);
      if (!now || now.name.join('\u0000') === action.to.join('\u0000')) return;
      await store.renameMailbox(now.name, action.to);
      return;
    }
    case 'delete':
      await store.deleteMailbox(action.name);
      return;
    case 'set-guid':
      await store.updateMailbox(action.name, { guid: action.guid });
      return;
    case 'subscribe':
      await store.setSubscribed(action.name, action.subscribed);
      return;
    case 'prune': {
      const known = (await store.getMessages(action.name)).messages.filter((m) => m.uid < action.belowUid);
      if (known.length > 0) await store.expunge(action.name, known.map((m) => m.uid));
      return;
    }
  }
}

interface Bound {
  store: MailStore;
  peer: MailStore;
  name: MailboxName;
  peerName: MailboxName;
}

/** Saves for one side, each body streamed from wherever the plan says it lives. */
async function applySaves(side: Bound, actions: SideActions, result: SyncResult, emit: (e: SyncEvent) => void = () => {}): Promise<boolean> {
  let complete = true;
  const opened: Readable[] = [];
  async function* requests(): AsyncGenerator<SaveRequest> {
    for (const s of actions.saves) {
      const [from, fromName] = s.from === 'self' ? [side.store, side.name] : [side.peer, side.peerName];
      let body;
      try {
        body = await from.openMessage(fromName, s.fromUid);
        if (s.from === 'self') opened.push(body);
      } catch (err) {
        if (!isMissing(err)) throw err;
        complete = false; // expunged meanwhile; the next run sees that
        continue;
      }
      yield { uid: s.uid, guid: s.guid, flags: s.flags, keywords: s.keywords, receivedDate: s.receivedDate, copyOf: s.from === 'self' ? s.fromUid : undefined, body: () => body };
      sent++;
      emit({ type: 'saved', name: side.name, uid: s.uid, size: s.size });
    }
  }
  let sent = 0;
  let saved;
  try {
    saved = await side.store.saveMessages(side.name, requests());
  } finally {
    // A store that linked a copy instead of reading it leaves its stream unread: close it.
    for (const b of opened) b.destroy();
  }
  result.saved += saved.length;
  result.bytes += savedBytes(actions.saves, saved);
  if (saved.length < sent) {
    // The store refused some (an IMAP server rejecting a message) and said so: the run is incomplete.
    emit({ type: 'warning', message: `${sent - saved.length} of ${sent} messages were not saved in ${side.store.location}` });
    complete = false;
  }
  // A wanted UID someone else took meanwhile leaves the sides consistent but unequal: run again.
  return complete && (side.store.assignsOwnUids === true || gotWantedUids(actions.saves, saved));
}

async function statusOf(store: MailStore, name: MailboxName): Promise<MailboxStatus | undefined> {
  return store.mailboxStatus(name).catch((err: unknown) => {
    if (isMissing(err)) return undefined;
    throw err;
  });
}

export async function runSync(a: MailStore, b: MailStore, options: SyncOptions = {}): Promise<SyncResult> {
  const mode = options.mode ?? 'twoway';
  const emit = options.onEvent ?? (() => {});
  const result: SyncResult = { mailboxes: 0, skipped: 0, treeActions: 0, saved: 0, bytes: 0, flagUpdates: 0, expunged: 0, changedDuringSync: false, incomplete: false, state: {} };

  let listA = await a.listMailboxes();
  const listB = await b.listMailboxes();
  // A's special-use folders go by B's names where the two differ.
  const translation = new NameTranslation(specialUsePairsFor({ store: a, list: listA.mailboxes }, { store: b, list: listB.mailboxes }));
  if (!translation.empty) {
    a = translatedStore(a, translation);
    listA = translatedList(listA, translation);
  }
  const included = translatedFilter(options.include ?? (() => true), translation);
  // Two-way, each side must hold the other's mailboxes; one way, only the destination.
  const unholdable = [
    ...unholdableIn(b, listA.mailboxes.filter(included)),
    ...(mode === 'twoway' ? unholdableIn(a, listB.mailboxes.filter(included)) : []),
  ];
  for (const u of unholdable) emit({ type: 'warning', message: describeUnholdable(u, u.location === a.location ? b.separator : a.separator) });
  if (unholdable.length > 0) result.incomplete = true;
  const holdable = withoutUnholdable(unholdable);
  const wanted = (m: MailboxStatus) => included(m) && holdable(m);
  const stateA = options.state ?? (mode === 'oneway' ? await onewayState(a, b) : await a.getPairState(b.storeId));
  // B's record of the pair, read once and only when a mailbox changed: see incrementalBasis.
  let stateB: Promise<PairState> | undefined;
  const peerState = () => (stateB ??= b.getPairState(a.storeId));
  const tree = planTreeTwoWay(
    { mailboxes: listA.mailboxes.filter(wanted), changes: listA.changes },
    { mailboxes: listB.mailboxes.filter(wanted), changes: listB.changes },
    mode,
    seenUpTo(stateA),
  );
  for (const [side, store] of [['a', a], ['b', b]] as const) {
    for (const action of tree[side]) {
      emit({ type: 'tree', side, action });
      if (action.type === 'prune') {
        const [here, there] = side === 'a' ? [a, b] : [b, a];
        emit({ type: 'warning', message: `mailbox ${action.name.join(here.separator)} was deleted in ${there.location}, but holds mail it never saw: kept in ${here.location} with only that mail, and created again in ${there.location}` });
      }
      result.treeActions++;
      if (options.dryRun) continue;
      try {
        await applyTree(store, action);
      } catch (err) {
        if (!(err instanceof MailferryError) || (err.kind !== 'exists' && err.kind !== 'notfound')) throw err;
        // Someone else changed the tree meanwhile, as dsync puts it: a change during sync.
        emit({ type: 'warning', message: err.message });
        result.changedDuringSync = true;
      }
    }
  }

  // Listing again only when the tree changed: for an IMAP store a listing is a round of LIST and
  // STATUS, the bulk of a no-op run.
  const treeChanged = !options.dryRun && tree.a.length + tree.b.length > 0;
  const boxesA = treeChanged ? (await a.listMailboxes()).mailboxes : listA.mailboxes;
  const boxesB = new Map((treeChanged ? (await b.listMailboxes()).mailboxes : listB.mailboxes).map((m) => [m.guid, m]));
  const newStateA: PairState = {};
  const newStateB: PairState = {};
  // `-m ''`: the mailbox tree only, as in dsync.
  if (options.treeOnly) return result;
  for (const boxA of boxesA.filter(wanted)) {
    const boxB = boxesB.get(boxA.guid);
    if (!boxB) continue; // only after a dry run's imagined create, or a race: the next run handles it
    result.mailboxes++;
    const before = stateA[boxA.guid];
    if (unchangedSince(before, boxA, boxB) && !options.full) {
      // Unchanged, so as proven as it was; but a state the caller gave (-s) proves nothing, and
      // one way the record is a watermark.
      newStateA[boxA.guid] = options.state || mode !== 'twoway' ? unproven(before) : before;
      newStateB[boxB.guid] = mirror(newStateA[boxA.guid]!);
      result.skipped++;
      emit({ type: 'skipped-mailbox', name: boxA.name });
      continue;
    }
    const basis = await incrementalBasis(a, b, boxA, boxB, before, mode, options, peerState);
    const { outcome, proven: provenAt } = await syncMailbox({ store: a, peer: b, name: boxA.name, peerName: boxB.name }, boxA, before, mode, options, result, emit, basis);
    if (outcome === 'changed') result.changedDuringSync = true;
    if (outcome === 'incomplete') result.incomplete = true;
    // An incomplete mailbox is never recorded as in sync: every run looks at it again.
    if (options.dryRun || outcome === 'incomplete') continue;
    const [sa, sb] = [await statusOf(a, boxA.name), await statusOf(b, boxB.name)];
    if (!sa || !sb) {
      result.changedDuringSync = true;
      continue;
    }
    // What the run proved in sync, not the statuses just read: mail delivered after the run's
    // re-check would otherwise be recorded as synced, and the next run would skip the mailbox.
    // Two-way, the run's own check found the sides equal at these numbers: a proven state.
    const recorded = pairStateOf(provenAt.a, provenAt.b);
    newStateA[sa.guid] = mode === 'twoway' ? provenState(recorded) : recorded;
    newStateB[sb.guid] = mirror(newStateA[sa.guid]!);
  }
  // After a run that saw changes under it, nothing may be skipped next time.
  // A filtered run leaves differences behind on purpose, so it proves nothing about being in sync.
  // A one-way run leaves the destination's own changes unsent, so it proves nothing either.
  if (!options.dryRun && !result.changedDuringSync && !options.messageFilter && mode === 'twoway') {
    failpoint('sync-before-pair-state');
    await a.setPairState(b.storeId, newStateA);
    await b.setPairState(a.storeId, newStateB);
    result.state = newStateA;
  }
  // A one-way run does prove that B holds everything A had: the next one need only send what
  // A changed after it (else it would send A's older changes again over B's own newer ones).
  if (!options.dryRun && !result.changedDuringSync && !options.messageFilter && mode === 'oneway') {
    failpoint('sync-before-pair-state');
    await b.setPairState(onewayKey(a), newStateA);
    result.state = newStateA;
  }
  return result;
}

/**
 * The pair state a changed mailbox may be synced from incrementally (incremental.ts), or
 * undefined when anything casts doubt on it; the mailbox is then listed and compared whole,
 * exactly as before there was an incremental path. Doubts: `-f`; a one-way run or a message
 * filter (both leave differences behind on purpose, so no state proves the sides equal); a
 * state given by the caller (`-s`: nothing proves it was recorded by a run that checked it);
 * a recorded state not marked proven, on either side: only a two-way run whose own check
 * found the sides equal marks one, where a backup counts messages with the same headers under
 * other GUIDs as equal, an older mailferry recorded statuses read after its check, and a `-s`
 * run records the caller's state for what it skipped; no state or another UIDVALIDITY on
 * either side (a first sync, a rebuilt mailbox); a side that hands out its own UIDs or whose
 * GUIDs are not native (messages are matched by header hash, which looks at every message);
 * and the two stores disagreeing on the state (B's was not written, or was written by
 * another run): only a state both recorded is taken.
 */
async function incrementalBasis(
  a: MailStore,
  b: MailStore,
  boxA: MailboxStatus,
  boxB: MailboxStatus,
  before: PairState[string] | undefined,
  mode: MergeMode,
  options: SyncOptions,
  peerState: () => Promise<PairState>,
): Promise<PairState[string] | undefined> {
  if (options.full || options.state || options.messageFilter || options.noIncremental || mode !== 'twoway' || !before) return undefined;
  if (before.uidValidity !== boxA.uidValidity || before.peerUidValidity !== boxB.uidValidity || before.uidValidity !== before.peerUidValidity) return undefined;
  if (a.assignsOwnUids || b.assignsOwnUids || !a.nativeGuids || !b.nativeGuids || a.adoptGuids || b.adoptGuids) return undefined;
  // Without reads in part (an older remote peer) whole listings are cheaper than changes plus them.
  if (!a.getMessagesOf || !b.getMessagesOf) return undefined;
  // Only a state a two-way run recorded after proving the sides equal (pair-state.ts): a
  // backup's, an older mailferry's, a -s run's or a sync -1's may hide a difference for good.
  if (!isProven(before)) return undefined;
  const theirs = (await peerState())[boxB.guid];
  if (!theirs || !isProven(theirs)) return undefined;
  const m = mirror(theirs);
  if (!unchangedSince(before, m, { uidValidity: m.peerUidValidity, uidNext: m.peerUidNext, highestModseq: m.peerHighestModseq })) return undefined;
  return before;
}

/** How far each side's UIDs went when the other side last saw each mailbox (A's pair state). */
function seenUpTo(state: PairState): SeenUpTo {
  return {
    a: new Map(Object.entries(state).map(([guid, s]) => [guid, s.uidNext])),
    b: new Map(Object.entries(state).map(([guid, s]) => [guid, s.peerUidNext])),
  };
}

/** Where the destination of `sync -1` keeps what the source looked like after the last one. */
const onewayKey = (source: MailStore) => `${source.storeId}:oneway`;

/** Per mailbox, the later of the two-way state and the one-way watermark (A's view). */
async function onewayState(a: MailStore, b: MailStore): Promise<PairState> {
  const merged: PairState = { ...(await a.getPairState(b.storeId)) };
  for (const [guid, s] of Object.entries(await b.getPairState(onewayKey(a)))) {
    const twoway = merged[guid];
    if (!twoway || twoway.uidValidity !== s.uidValidity || twoway.highestModseq < s.highestModseq) merged[guid] = s;
  }
  return merged;
}

type Status = Pick<MailboxStatus, 'uidValidity' | 'uidNext' | 'highestModseq'>;

/**
 * Returns 'changed' when the mailbox changed under us and the next run must finish the job, and
 * the statuses the run proved in sync: both sides as its re-check listed them (as planned when
 * there was nothing to do); one way, A always as planned, so a flag A changed during the run is
 * still new next time (only B's saves are re-checked one way).
 */
async function syncMailbox(
  sideA: Bound,
  boxA: MailboxStatus,
  before: PairState[string] | undefined,
  mode: MergeMode,
  options: SyncOptions,
  result: SyncResult,
  emit: (e: SyncEvent) => void,
  basis?: PairState[string],
): Promise<{ outcome: 'ok' | 'changed' | 'incomplete'; proven: { a: Status; b: Status } }> {
  const numbers = (x: Status): Status => ({ uidValidity: x.uidValidity, uidNext: x.uidNext, highestModseq: x.highestModseq });
  const outcome = (ok: boolean, checked?: { ra: Status; rb: Status }) => ({
    outcome: !ok ? ('changed' as const) : ma.skipped || mb.skipped ? ('incomplete' as const) : ('ok' as const),
    proven: { a: numbers(mode === 'oneway' || !checked ? ma : checked.ra), b: numbers(checked?.rb ?? mb) },
  });
  const sideB: Bound = { store: sideA.peer, peer: sideA.store, name: sideA.peerName, peerName: sideA.name };
  const equalUids = !sideA.store.assignsOwnUids && !sideB.store.assignsOwnUids;
  // Only what changed since the last proven sync where that state is trusted, else everything.
  const changed = basis && (await changedListings(sideA, sideB, basis));
  let [ma, mb] = changed ? [changed.ma, changed.mb] : [await sideA.store.getMessages(sideA.name), await sideB.store.getMessages(sideB.name)];
  const provenSince = {
    a: before && before.uidValidity === ma.uidValidity ? before.highestModseq : undefined,
    b: before && before.peerUidValidity === mb.uidValidity ? before.peerHighestModseq : undefined,
  };
  ({ ma, mb } = await matchByHeaderHash(sideA, ma, sideB, mb, { dryRun: options.dryRun, provenSince }));
  if (equalUids && ma.uidValidity !== mb.uidValidity && mode === 'twoway' && !options.dryRun) {
    if (ma.messages.length === 0 || mb.messages.length === 0) {
      // The usual first sync: one side is a fresh, empty mailbox; it simply takes the other's UIDVALIDITY.
      const [empty, full] = ma.messages.length === 0 ? [sideA, mb] : [sideB, ma];
      await empty.store.updateMailbox(empty.name, { uidValidity: full.uidValidity, restartUids: true });
    } else {
      await mergeUidValidityConflict(sideA, sideB, ma.messages.length >= mb.messages.length, result, before);
    }
    [ma, mb] = [await sideA.store.getMessages(sideA.name), await sideB.store.getMessages(sideB.name)];
    before = undefined;
  }
  // Without equal UIDs there is no UID epoch to share; each side's own UIDVALIDITY is what counts.
  const sameEpoch = before && before.uidValidity === ma.uidValidity && before.peerUidValidity === mb.uidValidity;
  // One way, every deletion the destination remembers counts: none is ever brought back.
  const side = (x: typeof ma, synced: number | undefined, store: MailStore, uidNext?: number): SyncSide => ({
    uidValidity: x.uidValidity,
    uidNext: x.uidNext,
    messages: x.messages,
    expunged: expungedInstances(x, sameEpoch && !(mode === 'oneway' && store === sideB.store) ? synced : undefined),
    syncedModseq: sameEpoch ? synced : undefined,
    syncedUidNext: sameEpoch && mode === 'oneway' ? uidNext : undefined,
    uniqueGuids: store.nativeGuids,
  });
  let [sa, sb] = [side(ma, before?.highestModseq, sideA.store, before?.uidNext), side(mb, before?.peerHighestModseq, sideB.store)];
  // Without a pair state every difference counts as a conflict, and the agreed base (if the
  // index kept one, e.g. after a run that exited 2) still decides it flag by flag; where none
  // does, the later change does.
  // By the planners' keys: each copy of a GUID held twice has its own flags and its own base.
  const [ka, kb] = [{ ...sa, messages: distinguishCopies(sa.messages) }, { ...sb, messages: distinguishCopies(sb.messages) }];
  const conflicts = flagConflicts(ka, kb);
  const wantBases = flagsNeedingBase(ka, kb, mode);
  const bases = wantBases.length > 0 ? await syncedFlags(sideA, sideB, boxA.guid, wantBases) : undefined;
  [sa, sb] = await withFlagChangeTimes(sideA, sa, sideB, sb, conflicts.filter((g) => !bases?.has(g)));
  const plan = filtered(planTwoWay(sa, sb, mode, equalUids, bases), options.messageFilter);
  emit({ type: 'mailbox', name: boxA.name, plan });
  if (options.dryRun) return outcome(true);
  // Every run records the flags the next conflict is measured against (also one that found
  // both sides had made the same change: the old base would count it as new on one side again).
  const since = sameEpoch ? before?.highestModseq : undefined;
  const recordBases = async (ra: MailboxChanges, rb: MailboxChanges) => {
    failpoint('sync-before-synced-flags');
    // One way, for every message A changed (B keeps its own changes, so the sides may differ).
    if (mode === 'oneway') return recordOnewayBase(sideA, sideB, boxA.guid, ma, rb, since, touchedGuids(plan, ma, mb));
    // Two-way, the agreed flags; a filtered run only for what it touched (it leaves other
    // differences behind on purpose).
    return recordSyncedFlags(sideA, sideB, boxA.guid, ra, rb, since, options.messageFilter ? touchedGuids(plan, ma, mb) : undefined);
  };
  if (isEmptyTwoWay(plan)) {
    await recordBases(ma, mb);
    return outcome(true);
  }
  let ok = (await applySaves(sideA, plan.a, result, emit)) && (await applySaves(sideB, plan.b, result, emit));
  for (const [s, actions] of [[sideA, plan.a], [sideB, plan.b]] as const) {
    if (actions.expunges.length > 0) await s.store.expunge(s.name, actions.expunges);
    if (actions.flagUpdates.length > 0) await s.store.updateFlags(s.name, actions.flagUpdates);
    result.expunged += actions.expunges.length;
    result.flagUpdates += actions.flagUpdates.length;
    if (!equalUids) continue;
    const st = await s.store.mailboxStatus(s.name);
    if (st && st.uidNext < plan.uidNext && (mode === 'twoway' || s === sideB)) await s.store.updateMailbox(s.name, { minUidNext: plan.uidNext });
  }
  // Planning again must find nothing: otherwise someone changed the mailbox meanwhile. After an
  // incremental plan, the same reading of changes since the last proven sync is enough.
  const rechanged = changed && (await changedListings(sideA, sideB, basis!));
  const [ra, rb] = rechanged ? [rechanged.ma, rechanged.mb] : [await sideA.store.getMessages(sideA.name), await sideB.store.getMessages(sideB.name)];
  // One way, by the same watermark the plan kept B's deletions by.
  const again = filtered(planTwoWay(side(ra, undefined, sideA.store, before?.uidNext), side(rb, undefined, sideB.store), mode, equalUids), options.messageFilter);
  if (!isEmptyTwoWay(again) && (mode === 'twoway' || again.b.saves.length > 0)) ok = false;
  await recordBases(ra, rb);
  return outcome(ok, { ra, rb });
}

/** The agreed flags of these messages, by the planners' keys. */
async function syncedFlags(sideA: Bound, sideB: Bound, mailboxGuid: string, keys: string[]): Promise<Map<string, SyncedFlags>> {
  const stored = keys.map(storedKeyOf);
  const found = sideA.store.getSyncedFlags
    ? await sideA.store.getSyncedFlags(sideB.store.storeId, mailboxGuid, stored)
    : sideB.store.getSyncedFlags
      ? await sideB.store.getSyncedFlags(sideA.store.storeId, mailboxGuid, stored)
      : new Map<string, SyncedFlags>();
  return new Map([...found].map(([k, v]) => [keyOfStored(k), v]));
}

/**
 * Remembers, in both stores, the flags both sides now agree on for every message that changed
 * since the last sync (all of them after a first or full-epoch sync): the base of the next
 * conflict. A message the sides still disagree on is left out; its old base stays right.
 */
function touchedGuids(plan: TwoWayPlan, ma: MailboxChanges, mb: MailboxChanges): Set<string> {
  const guidAtA = new Map(ma.messages.map((m) => [m.uid, m.guid]));
  const guidAtB = new Map(mb.messages.map((m) => [m.uid, m.guid]));
  return new Set([
    ...plan.a.flagUpdates.map((u) => guidAtA.get(u.uid)),
    ...plan.b.flagUpdates.map((u) => guidAtB.get(u.uid)),
    ...plan.a.saves.map((x) => x.guid),
    ...plan.b.saves.map((x) => x.guid),
  ].filter((g): g is string => g !== undefined));
}

async function recordSyncedFlags(sideA: Bound, sideB: Bound, mailboxGuid: string, ra: MailboxChanges, rb: MailboxChanges, sinceA: number | undefined, only?: Set<string>): Promise<void> {
  if (!sideA.store.setSyncedFlags && !sideB.store.setSyncedFlags) return;
  if (only && only.size === 0) return;
  // Copy by copy: the n-th copy of a GUID on one side is agreed with the n-th on the other.
  const byKeyB = new Map(distinguishCopies(rb.messages).map((m) => [m.guid, m]));
  const entries = distinguishCopies(ra.messages)
    .filter((m) => (only ? only.has(guidOf(m.guid)) : sinceA === undefined || m.modseq > sinceA))
    .filter((m) => {
      const other = byKeyB.get(m.guid);
      return other !== undefined && sameFlags(m, other);
    })
    .map((m) => ({ guid: storedKeyOf(m.guid), flags: [...m.flags], keywords: [...m.keywords] }));
  const replaceAll = sinceA === undefined && !only;
  if (entries.length === 0 && !replaceAll) return;
  await sideA.store.setSyncedFlags?.(sideB.store.storeId, mailboxGuid, entries, replaceAll);
  await sideB.store.setSyncedFlags?.(sideA.store.storeId, mailboxGuid, entries, replaceAll);
}

/**
 * One way, B took A's flag changes of every message A changed since the last run and kept its
 * own: A's flags as this run saw them are the base the next run measures A's changes against
 * (B's differences from them are B's own). They are A's flags as planned, not as re-read, so a
 * change A made during the run still counts as new next time. A two-way sync that follows
 * merges against the same base: B's own changes then reach A, and A's are not undone.
 */
async function recordOnewayBase(sideA: Bound, sideB: Bound, mailboxGuid: string, ma: MailboxChanges, rb: MailboxChanges, sinceA: number | undefined, touched: Set<string>): Promise<void> {
  if (!sideA.store.setSyncedFlags && !sideB.store.setSyncedFlags) return;
  const inB = new Set(distinguishCopies(rb.messages).map((m) => m.guid));
  const entries = distinguishCopies(ma.messages)
    .filter((m) => inB.has(m.guid) && (sinceA === undefined || m.modseq > sinceA || touched.has(guidOf(m.guid))))
    .map((m) => ({ guid: storedKeyOf(m.guid), flags: [...m.flags], keywords: [...m.keywords] }));
  if (entries.length === 0) return;
  await sideA.store.setSyncedFlags?.(sideB.store.storeId, mailboxGuid, entries, false);
  await sideB.store.setSyncedFlags?.(sideA.store.storeId, mailboxGuid, entries, false);
}

/**
 * The same mailbox with two UIDVALIDITYs: keep the one with more messages (dsync's rule),
 * give it what only the other had, then rebuild the other from it. Expunge logs still count:
 * what one side deliberately deleted is not carried back by the other. Flag changes the
 * losing side made since the last sync are kept when the winner did not touch the message, or
 * touched it earlier by both stores' change times.
 */
async function mergeUidValidityConflict(sideA: Bound, sideB: Bound, aWins: boolean, result: SyncResult, before: PairState[string] | undefined): Promise<void> {
  const [winner, loser] = aWins ? [sideA, sideB] : [sideB, sideA];
  const [mw, ml] = [await winner.store.getMessages(winner.name), await loser.store.getMessages(loser.name)];
  // The recorded modseqs still describe each side when its own UIDVALIDITY is the recorded one.
  const recorded = (forA: boolean, uidValidity: number) => {
    if (!before) return undefined;
    const [v, hms] = forA ? [before.uidValidity, before.highestModseq] : [before.peerUidValidity, before.peerHighestModseq];
    return v === uidValidity ? hms : undefined;
  };
  const winnerSynced = recorded(aWins, mw.uidValidity);
  const loserSynced = recorded(!aWins, ml.uidValidity);
  const winnerGone = new Set(mw.expunged.map((e) => e.guid));
  const loserGone = new Set(ml.expunged.map((e) => e.guid));
  const loserByGuid = new Map(ml.messages.map((m) => [m.guid, m]));
  const winnerGuids = new Set(mw.messages.map((m) => m.guid));

  const dropFromWinner = mw.messages.filter((m) => !loserByGuid.has(m.guid) && loserGone.has(m.guid)).map((m) => m.uid);
  if (dropFromWinner.length > 0) await winner.store.expunge(winner.name, dropFromWinner);
  result.expunged += dropFromWinner.length;
  const changed = (m: MessageMeta, synced: number | undefined) => synced === undefined || m.modseq > synced;
  const bothChanged = mw.messages.filter((m) => {
    const l = loserByGuid.get(m.guid);
    return l !== undefined && !sameFlags(m, l) && changed(m, winnerSynced) && changed(l, loserSynced);
  });
  // Both changed and nothing recorded says how: the later change wins, where both stores can tell.
  const [winnerTimes, loserTimes] =
    bothChanged.length > 0 && winner.store.flagChangeTimes && loser.store.flagChangeTimes
      ? [
          await winner.store.flagChangeTimes(winner.name, bothChanged.map((m) => m.uid)),
          await loser.store.flagChangeTimes(loser.name, bothChanged.map((m) => loserByGuid.get(m.guid)!.uid)),
        ]
      : [new Map<number, number>(), new Map<number, number>()];
  const flagUpdates = mw.messages.flatMap((m) => {
    const l = loserByGuid.get(m.guid);
    if (!l || sameFlags(m, l)) return [];
    const loserChanged = changed(l, loserSynced);
    const winnerChanged = changed(m, winnerSynced);
    const loserLater = (loserTimes.get(l.uid) ?? -Infinity) > (winnerTimes.get(m.uid) ?? Infinity);
    return loserChanged && (!winnerChanged || loserLater) ? [{ uid: m.uid, flags: [...l.flags], keywords: [...l.keywords] }] : [];
  });
  if (flagUpdates.length > 0) await winner.store.updateFlags(winner.name, flagUpdates);
  result.flagUpdates += flagUpdates.length;

  const incoming = ml.messages.filter((m) => !winnerGuids.has(m.guid) && !winnerGone.has(m.guid));
  const none = new Map<string, number[]>();
  const intoWinner = planTwoWay(
    { uidValidity: ml.uidValidity, uidNext: ml.uidNext, messages: incoming, expunged: none },
    { uidValidity: mw.uidValidity, uidNext: mw.uidNext, messages: mw.messages.filter((m) => !dropFromWinner.includes(m.uid)), expunged: none },
    'oneway',
  );
  // Only the loser's mail moves in. One way, a winner's message at a UID an incoming one wants
  // is moved as well (a save from itself, then an expunge), but the expunge is no part of this
  // step: the save alone left it at two UIDs, the rebuild copied both to the loser, and every
  // later run renumbered the pair again. The winner keeps its UIDs; the incoming one already
  // has a fresh UID above both UIDNEXTs.
  await applySaves({ ...winner, peer: loser.store, peerName: loser.name }, { saves: intoWinner.b.saves.filter((s) => s.from === 'peer'), expunges: [], flagUpdates: [] }, result);
  const fresh = await winner.store.getMessages(winner.name);
  const rebuild = planMailboxBackup(fresh, ml);
  await loser.store.expunge(loser.name, ml.messages.map((m) => m.uid));
  await loser.store.updateMailbox(loser.name, { uidValidity: fresh.uidValidity, restartUids: true });
  await applySaves(
    { store: loser.store, peer: winner.store, name: loser.name, peerName: winner.name },
    { saves: rebuild.saves.map((s) => ({ ...s, from: 'peer' as const, fromUid: s.uid })), expunges: [], flagUpdates: [] },
    result,
  );
  await loser.store.updateMailbox(loser.name, { minUidNext: fresh.uidNext });
}
