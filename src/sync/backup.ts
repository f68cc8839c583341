/**
 * One-way backup: makes the destination equal to the source (mailboxes, GUIDs, UIDVALIDITY,
 * messages at their UIDs, flags, keywords, subscriptions), removing what the source lacks.
 * Plans come from the pure planners; this file only carries them out, streaming each body
 * from source to destination so memory stays flat however large the mailbox.
 */
import { MailferryError } from '../model/errors.js';
import { failpoint } from '../model/failpoint.js';
import type { MailboxName, MailboxStatus, MailStore, MessageMeta, PairState, SavedMessage, SaveRequest } from '../storage/store.js';
import { matchByHeaderHash, sameMessagesAtClashingUids } from './hash-match.js';
import { distinguishCopies, gotWantedUids, savedBytes, storedKeyOf } from './copies.js';
import { CHECK_PART, equalInParts } from './equal-in-parts.js';
import { isEmptyPlan, planMailboxBackup, planMailboxBackupByGuid, sameAtEveryUid, type MailboxBackupPlan } from './mailbox-plan.js';
import type { MessageFilter } from './message-filter.js';
import { mirror, pairStateOf, proven, unchangedSince } from './pair-state.js';
import { NameTranslation, specialUsePairsFor, translatedFilter } from './special-use-names.js';
import { translatedStore } from './translated-store.js';
import { planTreeBackup, type TreeAction } from './tree-plan.js';
import { describeUnholdable, unholdableIn, withoutUnholdable } from './unholdable.js';

export interface BackupOptions {
  /** Only plan; change nothing. */
  dryRun?: boolean;
  /** Sync the mailbox list (creates, renames, deletes, subscriptions) and no messages. */
  treeOnly?: boolean;
  /** Which mailboxes to touch (all when absent); see mailbox-filter.ts. */
  include?: (mailbox: MailboxStatus) => boolean;
  /** Only messages it accepts are copied (-t, -e, -O, -I); others are left alone on both sides. */
  messageFilter?: MessageFilter;
  /** Compare every mailbox, also those neither side changed since the last backup (-f). */
  full?: boolean;
  /** UIDs the final check of a mailbox larger than this reads back at once (CHECK_PART); a smaller one is listed whole. */
  checkPart?: number;
  onEvent?: (event: BackupEvent) => void;
}

export type BackupEvent =
  | { type: 'tree'; action: TreeAction }
  | { type: 'mailbox'; name: MailboxName; plan: MailboxBackupPlan }
  | { type: 'skipped-mailbox'; name: MailboxName }
  | { type: 'saved'; name: MailboxName; uid: number; size: number }
  | { type: 'skipped'; name: MailboxName; uid: number; reason: string }
  | { type: 'warning'; message: string };

export interface BackupResult {
  mailboxes: number;
  /** Mailboxes neither side changed since the last backup: not compared. */
  skipped: number;
  treeActions: number;
  saved: number;
  bytes: number;
  flagUpdates: number;
  expunged: number;
  rebuilt: number;
  /** The source changed while we copied: the destination is consistent but behind; run again. */
  changedDuringSync: boolean;
  /**
   * Mailboxes the destination cannot hold, or holding entries the source will not read (a link,
   * a FIFO, a file name it cannot keep), were left out with a warning: the copy is incomplete.
   */
  incomplete: boolean;
}

async function applyTreeAction(dest: MailStore, a: TreeAction): Promise<void> {
  switch (a.type) {
    case 'rename':
      return dest.renameMailbox(a.from, a.to);
    case 'delete':
      return dest.deleteMailbox(a.name);
    case 'create':
      await dest.createMailbox(a.name, { guid: a.guid, uidValidity: a.uidValidity, specialUse: a.specialUse });
      return;
    case 'adopt':
      await dest.updateMailbox(a.name, { guid: a.guid });
      return;
    case 'subscribe':
      return dest.setSubscribed(a.name, a.subscribed);
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof MailferryError && err.kind === 'notfound';
}

/** `dest` undefined stands for a destination that does not exist yet (only with `dryRun`). */
export async function runBackup(source: MailStore, dest: MailStore | undefined, options: BackupOptions = {}): Promise<BackupResult> {
  if (!dest && !options.dryRun) throw new Error('runBackup needs a destination store unless dryRun is set');
  const emit = options.onEvent ?? (() => {});
  const result: BackupResult = { mailboxes: 0, skipped: 0, treeActions: 0, saved: 0, bytes: 0, flagUpdates: 0, expunged: 0, rebuilt: 0, changedDuringSync: false, incomplete: false };
  const wanted = options.include ?? (() => true);

  const sourceAll = (await source.listMailboxes()).mailboxes;
  const destAll = dest ? (await dest.listMailboxes()).mailboxes : [];
  // The source's special-use folders go by the destination's names where the two differ.
  const translation = new NameTranslation(dest ? specialUsePairsFor({ store: source, list: sourceAll }, { store: dest, list: destAll }) : []);
  if (!translation.empty) source = translatedStore(source, translation);
  const included = translatedFilter(wanted, translation);
  const shownList = sourceAll.map((m) => ({ ...m, name: translation.shown(m.name) })).filter(included);
  const unholdable = dest ? unholdableIn(dest, shownList) : [];
  for (const u of unholdable) emit({ type: 'warning', message: describeUnholdable(u, source.separator) });
  if (unholdable.length > 0) result.incomplete = true;
  const holdable = withoutUnholdable(unholdable);
  const sourceList = shownList.filter(holdable);
  const destList = destAll.filter(included).filter(holdable);
  const treeActions = planTreeBackup(sourceList, destList);
  for (const action of treeActions) {
    emit({ type: 'tree', action });
    result.treeActions++;
    if (dest && !options.dryRun) await applyTreeAction(dest, action);
  }

  // `-m ''`: the mailbox tree only, as in dsync.
  if (options.treeOnly) return result;
  // A filtered run leaves differences behind on purpose: it neither trusts nor records a state.
  const recording = dest !== undefined && !options.dryRun && !options.messageFilter;
  const before: PairState = recording ? await dest.getPairState(backupStateKey(source)) : {};
  const after: PairState = {};
  const destNow = recording && treeActions.length > 0 ? (await dest.listMailboxes()).mailboxes : destList;
  const destByGuid = new Map(destNow.map((m) => [m.guid, m]));
  for (const box of sourceList) {
    result.mailboxes++;
    const prior = before[box.guid];
    const destBox = destByGuid.get(box.guid);
    if (!options.full && destBox && unchangedSince(prior, box, destBox)) {
      after[box.guid] = prior;
      result.skipped++;
      emit({ type: 'skipped-mailbox', name: box.name });
      continue;
    }
    let src = await source.getMessages(box.name).catch((err: unknown) => {
      if (isNotFound(err)) return undefined; // deleted at the source meanwhile
      throw err;
    });
    if (!src) {
      result.changedDuringSync = true;
      continue;
    }
    // The source left entries out (and warned of each): never recorded as in sync, so every
    // run looks at this mailbox again and says it is incomplete.
    const complete = !src.skipped;
    if (!complete) result.incomplete = true;
    let dst = !dest || (options.dryRun && !(await dest.mailboxStatus(box.name))) ? undefined : await dest.getMessages(box.name);
    const here = { store: source, name: box.name };
    const there = dest && { store: dest, name: box.name };
    let sameAt = new Set<number>();
    let mismatched = 0;
    if (there && dst) {
      ({ ma: src, mb: dst, mismatched } = await matchByHeaderHash(here, src, there, dst, options));
      if (!dest!.assignsOwnUids) sameAt = await sameMessagesAtClashingUids(here, src, there, dst);
      // Matching trouble is said once per mailbox and costs no copy: only what no side pairs is copied.
      const renamed = mismatched + sameAt.size;
      if (renamed > 0) emit({ type: 'warning', message: `mailbox ${box.name.join(source.separator)}: ${renamed} message(s) the destination holds under other GUIDs or header hashes than the source's are the same mail by their headers; they are kept, not copied again` });
    }
    const keep = options.messageFilter;
    const planFor = (s: typeof src, d: typeof dst, same: ReadonlySet<number>) => (dest?.assignsOwnUids ? planMailboxBackupByGuid(s, d) : planMailboxBackup(s, d, same));
    const plan = keep
      ? planFor({ ...src, messages: src.messages.filter(keep) }, dst && { ...dst, messages: dst.messages.filter(keep) }, sameAt)
      : planFor(src, dst, sameAt);
    if (keep && dst && (plan.rebuild || (plan.restamp && dst.messages.length > 0))) {
      // Rebuilding would have to empty the mailbox, including the messages the filter hides.
      emit({ type: 'skipped', name: box.name, uid: 0, reason: `not rebuilt because a message filter is active (${plan.rebuildReason ?? ''}); run without -t/-e/-O/-I` });
      continue;
    }
    emit({ type: 'mailbox', name: box.name, plan });
    if (!dest || options.dryRun) {
      result.saved += plan.saves.length;
      result.bytes += plan.saves.reduce((n, x) => n + x.size, 0);
      result.flagUpdates += plan.flagUpdates.length;
      result.expunged += plan.expunges.length;
      if (plan.rebuild) result.rebuilt++;
      continue;
    }
    if (plan.rebuild || plan.restamp) {
      // Emptied and re-stamped in place rather than deleted: INBOX cannot be deleted, and the
      // folder keeps its subscription. The new UIDVALIDITY voids any cached UIDs.
      if (plan.rebuild) result.rebuilt++;
      if (dst!.messages.length > 0) await dest.expunge(box.name, dst!.messages.map((m) => m.uid));
      await dest.updateMailbox(box.name, { uidValidity: src.uidValidity, guid: box.guid, restartUids: true });
    }
    if (plan.expunges.length > 0) await dest.expunge(box.name, plan.expunges);
    result.expunged += plan.expunges.length;
    if (plan.flagUpdates.length > 0) await dest.updateFlags(box.name, plan.flagUpdates);
    result.flagUpdates += plan.flagUpdates.length;

    async function* requests(): AsyncGenerator<SaveRequest> {
      for (const s of plan.saves) {
        let body;
        try {
          body = await source.openMessage(box.name, s.uid);
        } catch (err) {
          if (!isNotFound(err)) throw err;
          // Expunged at the source after we listed it: nothing to copy, but say so.
          result.changedDuringSync = true;
          emit({ type: 'skipped', name: box.name, uid: s.uid, reason: 'expunged at the source during the run' });
          continue;
        }
        yield { uid: s.uid, guid: s.guid, flags: s.flags, keywords: s.keywords, receivedDate: s.receivedDate, body: () => body };
        sent++;
        emit({ type: 'saved', name: box.name, uid: s.uid, size: s.size });
      }
    }
    let sent = 0;
    let saved: SavedMessage[] | undefined = plan.saves.length > 0 ? await dest.saveMessages(box.name, requests()) : [];
    result.saved += saved.length;
    result.bytes += savedBytes(plan.saves, saved);
    // A store that refuses a message (an IMAP server) reports it and saves the rest: run again.
    if (saved.length < sent) result.changedDuringSync = true;
    const gotWanted = dest.assignsOwnUids || gotWantedUids(plan.saves, saved);
    // The destination's first listing, what the saves returned and the saves themselves are not
    // needed any more: a big mailbox's would otherwise be held beside the listing the check
    // below reads (the event that showed the plan has been handled).
    saved = dst = undefined;
    plan.saves = [];
    if (!dest.assignsOwnUids) {
      // Someone took the UIDs we wanted: consistent, but not equal; the next run rebuilds.
      if (!gotWanted) result.changedDuringSync = true;
      const after = await dest.mailboxStatus(box.name);
      if (after && after.uidNext < plan.uidNext) await dest.updateMailbox(box.name, { minUidNext: plan.uidNext });
    }
    const now = await source.mailboxStatus(box.name);
    if (!now || now.highestModseq !== src.highestModseq || now.uidNext !== src.uidNext || now.uidValidity !== src.uidValidity) {
      result.changedDuringSync = true;
      continue;
    }
    if (!recording) continue;
    // What the next backup will take as "in sync": the status first, then proof that the
    // destination holds exactly the source's mail. A change another program made after our
    // writes shows in the second if not in the first, and is then not recorded as ours.
    const destAfter = await dest.mailboxStatus(box.name);
    // A big mailbox equal at every UID, the usual end of a backup, is read back in parts.
    const part = options.checkPart ?? CHECK_PART;
    const inParts = !dest.assignsOwnUids && destAfter !== undefined && src.messages.length > part && (await equalInParts(dest, box.name, src, destAfter, part));
    const dstAfter = inParts ? undefined : await dest.getMessages(box.name);
    // Equal at every UID needs no maps of the two listings either.
    const equal = inParts || (!dest.assignsOwnUids && sameAtEveryUid(src, dstAfter!));
    const sameAfter = dest.assignsOwnUids || equal ? new Set<number>() : await sameMessagesAtClashingUids(here, src, there!, dstAfter!);
    if (destAfter && (equal || isEmptyPlan(planFor(src, dstAfter!, sameAfter)))) {
      if (complete) {
        const keyed = distinguishCopies(src.messages);
        // Proven, as a two-way run's own check proves it, only when the destination holds the
        // source's messages at their UIDs under their own GUIDs, each GUID once: mail taken as
        // the same by its headers (another GUID, or another message at a clashing UID) is equal
        // to a backup but not to a sync, and a sync takes two copies of a GUID for a renumbering
        // cut short and keeps one. Such a mailbox is compared whole by the next sync (sync.ts,
        // incrementalBasis).
        const exact = mismatched === 0 && sameAt.size === 0 && sameAfter.size === 0 && keyed === src.messages;
        const state = pairStateOf(now, destAfter);
        after[box.guid] = exact ? proven(state) : state;
        await recordAgreedFlags(source, dest, box.guid, keyed);
      }
    }
    else result.changedDuringSync = true;
  }
  if (recording && !result.changedDuringSync) {
    failpoint('backup-before-state');
    await dest.setPairState(backupStateKey(source), after);
    // The two sides are now equal, as after a two-way sync: a sync that follows need only
    // look at what changed since.
    failpoint('backup-between-states');
    // Each mailbox as proven as this run's check (or the one that let it be skipped) found it.
    await source.setPairState(dest.storeId, after);
    await dest.setPairState(source.storeId, Object.fromEntries(Object.entries(after).map(([guid, s]) => [guid, mirror(s)])));
  }
  return result;
}

/**
 * The two sides now hold the same flags: the base a later two-way sync merges a conflict
 * against, flag by flag, exactly as after a sync (else one side's change would be lost).
 * `keyed`: the source's listing with each further copy of a GUID told apart (copies.ts).
 */
async function recordAgreedFlags(source: MailStore, dest: MailStore, mailboxGuid: string, keyed: readonly MessageMeta[]): Promise<void> {
  // Without copies the listing itself is the entries (a key is then its GUID): a big mailbox's
  // entries would otherwise be held at once beside it.
  const entries = keyed.every((m) => storedKeyOf(m.guid) === m.guid) ? keyed : keyed.map((m) => ({ guid: storedKeyOf(m.guid), flags: m.flags, keywords: m.keywords }));
  await source.setSyncedFlags?.(dest.storeId, mailboxGuid, entries, true);
  await dest.setSyncedFlags?.(source.storeId, mailboxGuid, entries, true);
}

/**
 * Where the destination keeps what both sides looked like after the last backup from this
 * source. Its own key, not the two-way one: a two-way sync between stores that pick their own
 * UIDs leaves the two sides equal but at different UIDs, which a backup would not call equal.
 */
const backupStateKey = (source: MailStore) => `${source.storeId}:backup`;
