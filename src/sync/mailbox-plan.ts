/**
 * Planning one mailbox of a one-way backup: pure, no I/O. Given everything the source and
 * the destination hold, say what the destination must do to equal the source.
 *
 * UIDs are part of what a backup copies, and a destination can only hand out UIDs at or
 * above its UIDNEXT. When the source holds a message at a UID the destination has already
 * used for something else (or skipped), the destination cannot be patched; it must be
 * rebuilt, as dsync does.
 */
import type { FlagUpdate, MessageMeta } from '../storage/store.js';
import { distinguishCopies, guidOf } from './copies.js';

export interface MailboxSide {
  uidValidity: number;
  uidNext: number;
  messages: readonly MessageMeta[];
}

export interface SaveAction {
  /** UID at the source: where the body comes from, and the UID wanted at the destination. */
  uid: number;
  guid: string;
  flags: MessageMeta['flags'];
  keywords: string[];
  receivedDate: number;
  size: number;
}

export interface MailboxBackupPlan {
  /** The destination cannot be patched into equality: delete it and copy everything. */
  rebuild: boolean;
  /** Why a rebuild is needed, for the log. */
  rebuildReason?: string;
  /**
   * The destination is empty but stamped with its own UIDVALIDITY or a higher UIDNEXT (a
   * mailbox created on open): it takes the source's UIDVALIDITY and starts its UIDs over.
   * Nothing is emptied, so this is no rebuild.
   */
  restamp?: boolean;
  saves: SaveAction[];
  flagUpdates: FlagUpdate[];
  expunges: number[];
  /** Raise the destination's UIDNEXT to this when it is lower. */
  uidNext: number;
}

function sameOrder(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function sameFlags(a: MessageMeta, b: Pick<MessageMeta, 'flags' | 'keywords'>): boolean {
  if (a.flags.length !== b.flags.length || a.keywords.length !== b.keywords.length) return false;
  // The usual case, met once per message of a mailbox: the same flags in the same order.
  if (sameOrder(a.flags, b.flags) && sameOrder(a.keywords, b.keywords)) return true;
  const flags = new Set<string>(a.flags);
  const keywords = new Set(a.keywords);
  return b.flags.every((f) => flags.has(f)) && b.keywords.every((k) => keywords.has(k));
}

/**
 * A listed message is already all a save needs: the listing's record itself, not a copy, since
 * a first backup of a big mailbox plans one save per message and holds them all.
 */
function toSave(m: MessageMeta): SaveAction {
  return m;
}

/**
 * `sameAt`: UIDs where the two sides' messages differ in GUID but are proven the same message
 * by their matching hash (hash-match.ts, sameMessagesAtClashingUids); they are kept, not a
 * reason to rebuild.
 */
export function planMailboxBackup(source: MailboxSide, dest: MailboxSide | undefined, sameAt: ReadonlySet<number> = new Set()): MailboxBackupPlan {
  const emptyDest = dest !== undefined && dest.messages.length === 0;
  const everything = (reason?: string): MailboxBackupPlan => ({
    rebuild: dest !== undefined && !emptyDest,
    ...(emptyDest ? { restamp: true } : { rebuildReason: reason }),
    saves: [...source.messages].sort((a, b) => a.uid - b.uid).map(toSave),
    flagUpdates: [],
    expunges: [],
    uidNext: source.uidNext,
  });
  if (!dest) return everything();
  if (dest.uidValidity !== source.uidValidity) {
    return everything(`UIDVALIDITY ${dest.uidValidity} differs from the source's ${source.uidValidity}`);
  }
  if (dest.uidNext > source.uidNext) {
    // UIDNEXT never goes down, so equality is out of reach without starting over.
    return everything(`UIDNEXT ${dest.uidNext} is above the source's ${source.uidNext}`);
  }
  const byUid = new Map(dest.messages.map((m) => [m.uid, m]));
  const sourceUids = new Set<number>();
  const saves: SaveAction[] = [];
  const flagUpdates: FlagUpdate[] = [];
  for (const s of [...source.messages].sort((a, b) => a.uid - b.uid)) {
    sourceUids.add(s.uid);
    const d = byUid.get(s.uid);
    if (d) {
      if (d.guid !== s.guid && !sameAt.has(s.uid)) return everything(`UID ${s.uid} holds a different message (GUID ${d.guid}, source has ${s.guid})`);
      if (!sameFlags(d, s)) flagUpdates.push({ uid: s.uid, flags: [...s.flags], keywords: [...s.keywords] });
    } else if (s.uid < dest.uidNext) {
      return everything(`UID ${s.uid} (GUID ${s.guid}) is missing and below the destination's UIDNEXT ${dest.uidNext}`);
    } else {
      saves.push(toSave(s));
    }
  }
  const expunges = dest.messages.filter((m) => !sourceUids.has(m.uid)).map((m) => m.uid).sort((a, b) => a - b);
  return { rebuild: false, saves, flagUpdates, expunges, uidNext: source.uidNext };
}

/**
 * True when the destination holds exactly the source's messages at the same UIDs, each with
 * the same GUID and flags, under the same UIDVALIDITY and no higher UIDNEXT: then the backup
 * plan is empty and no UID clashes, known without the maps planning builds (a backup's final
 * check of a big mailbox). False says only that the plan must be made to know.
 */
export function sameAtEveryUid(source: MailboxSide, dest: MailboxSide): boolean {
  if (dest.uidValidity !== source.uidValidity || dest.uidNext > source.uidNext) return false;
  const [a, b] = [source.messages, dest.messages];
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const [s, d] = [a[i]!, b[i]!];
    if (s.uid !== d.uid || s.guid !== d.guid || (i > 0 && s.uid <= a[i - 1]!.uid) || !sameFlags(d, s)) return false;
  }
  return true;
}

export function isEmptyPlan(plan: MailboxBackupPlan): boolean {
  return !plan.rebuild && !plan.restamp && plan.saves.length === 0 && plan.flagUpdates.length === 0 && plan.expunges.length === 0;
}

/**
 * The backup plan for a destination that hands out its own UIDs (an IMAP server): equal by
 * GUID instead of by UID. A second copy of one GUID at the destination is expunged.
 */
export function planMailboxBackupByGuid(source: MailboxSide, dest: MailboxSide | undefined): MailboxBackupPlan {
  // Copies sharing a GUID (a header hash) pair up one to one, n-th with n-th.
  const sourceKeyed = distinguishCopies([...source.messages].sort((a, b) => a.uid - b.uid));
  const sourceByGuid = new Map(sourceKeyed.map((m) => [m.guid, m]));
  const kept = new Set<string>();
  const flagUpdates: FlagUpdate[] = [];
  const expunges: number[] = [];
  for (const d of distinguishCopies([...(dest?.messages ?? [])].sort((a, b) => a.uid - b.uid))) {
    const s = sourceByGuid.get(d.guid);
    if (!s || kept.has(d.guid)) {
      expunges.push(d.uid);
      continue;
    }
    kept.add(d.guid);
    if (!sameFlags(d, s)) flagUpdates.push({ uid: d.uid, flags: [...s.flags], keywords: [...s.keywords] });
  }
  const saves = sourceKeyed.filter((m) => !kept.has(m.guid)).map((m) => ({ ...toSave(m), guid: guidOf(m.guid) }));
  return { rebuild: false, saves, flagUpdates, expunges, uidNext: source.uidNext };
}
