/**
 * Bringing the change index up to date with one mbox file, whichever program changed it.
 *
 * A message's UID is its X-UID when that is valid (above the previous message's and not past
 * the last UID the X-IMAPbase/X-IMAP header records, as Dovecot requires). Messages without
 * one (delivered by Postfix since the last write) get the next UIDs in the index only; they
 * keep them across scans by matching their header hash, in file order, and the next write
 * puts them in the file. A UID whose message has another header hash than the index knows
 * is a replaced message: an expunge of the old one (with its GUID) and a new message.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync } from 'node:fs';
import type { ChangeIndex, IndexedMailbox, IndexedMessage, MessageChange } from '../index/change-index.js';
import { nextUidValidity } from '../maildir/uidvalidity.js';
import type { MailboxName } from '../store.js';
import { flagsFromStatus } from './mbox-headers.js';
import type { MboxScan, ScannedMessage } from './mbox-scan.js';
import { decodeLocation, encodeLocation, flagsToIndexLetters } from './message-location.js';

export interface MboxContext {
  path: string;
  name: MailboxName;
  index: ChangeIndex;
  /** Where a new UIDVALIDITY is allocated (never the mbox root, where any file is a mailbox). */
  indexDir: string;
  lockTimeoutSeconds: number;
  fsync: boolean;
  warn: (msg: string) => void;
  /** The last scan of each file this store made, by path. */
  scans?: Map<string, ScanRecord>;
  /**
   * Files whose write lock this store holds while it waits between two of its writes: a save
   * waiting for its next requests. A caller copying messages within the mailbox reads them from
   * this same store meanwhile, and those reads must not wait for a lock that is not released
   * before they end.
   */
  pausedWrites?: Set<string>;
}

export interface ScanRecord {
  /** The fingerprint the file had when it was scanned. */
  fp: string;
  scan: MboxScan;
  /** The mailbox whose index rows were made from this scan of the whole file, when they were. */
  recordedIn?: number;
}

/** File identity, size and mtime; null when too recent to prove a later scan unneeded. */
export function fileFingerprint(path: string): { value: string; safe: boolean } {
  try {
    // Not following a link: what is fingerprinted is what the store would open (and refuse).
    const st = lstatSync(path);
    return { value: `${st.ino}:${st.size}:${st.mtimeMs}`, safe: Date.now() - st.mtimeMs > 2000 };
  } catch {
    return { value: 'absent', safe: true };
  }
}

export function indexedMailboxByName(index: ChangeIndex, name: MailboxName): IndexedMailbox | undefined {
  const key = JSON.stringify(name);
  return index.listMailboxes().find((m) => JSON.stringify(m.name) === key);
}

export function newMailboxGuid(): string {
  return randomBytes(16).toString('hex');
}

export interface NumberedMessage {
  message: ScannedMessage;
  uid: number;
  virtualUid: boolean;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  if (a.length <= 1) return a[0] === b[0];
  const s = new Set(a);
  return b.every((x) => s.has(x));
}

/** Records what the scan shows as changes in the index; returns the messages with their UIDs. */
export function syncIndex(ctx: MboxContext, scan: MboxScan, fp: { value: string; safe: boolean }): { mailbox: IndexedMailbox; numbered: NumberedMessage[] } {
  let mailbox = indexedMailboxByName(ctx.index, ctx.name);
  if (!mailbox) {
    mailbox = ctx.index.addMailbox(newMailboxGuid(), ctx.name, scan.base?.uidValidity ?? nextUidValidity(ctx.indexDir));
  } else if (scan.base && scan.base.uidValidity !== mailbox.uidValidity) {
    ctx.warn(`${ctx.path}: UIDVALIDITY changed from ${mailbox.uidValidity} to ${scan.base.uidValidity}; every message counts as new`);
    ctx.index.resetMailbox(mailbox.id, scan.base.uidValidity);
    mailbox = ctx.index.mailboxByGuid(mailbox.guid)!;
  }
  const rows = ctx.index.messages(mailbox.id);
  const byUid = new Map(rows.map((r) => [r.uid, r]));
  // Only a row whose location has a `v` mark can be one (the other fields are digits and hex).
  const virtualRows = rows.filter((r) => r.file.includes('v') && decodeLocation(r.file)?.virtualUid);
  let vi = 0;
  const lastFileUid = scan.base?.lastUid;
  let previous = 0;
  const pending: { message: ScannedMessage; uid?: number; virtualUid: boolean }[] = [];
  for (const m of scan.messages) {
    const x = m.uid;
    if (x !== undefined && x > previous && (lastFileUid === undefined || x <= lastFileUid)) {
      previous = x;
      pending.push({ message: m, uid: x, virtualUid: false });
      continue;
    }
    let uid: number | undefined;
    for (let j = vi; j < virtualRows.length; j++) {
      const loc = decodeLocation(virtualRows[j]!.file);
      if (loc?.hash === m.hash && virtualRows[j]!.uid > previous) {
        uid = virtualRows[j]!.uid;
        vi = j + 1;
        break;
      }
    }
    if (uid !== undefined) previous = uid;
    pending.push({ message: m, uid, virtualUid: true });
  }
  let next = Math.max(mailbox.uidNext, (lastFileUid ?? 0) + 1, previous + 1);
  for (const r of rows) if (r.uid >= next) next = r.uid + 1;
  const numbered: NumberedMessage[] = pending.map((p) => ({ message: p.message, uid: p.uid ?? next++, virtualUid: p.virtualUid }));

  const changes: MessageChange[] = [];
  const present = new Set<number>();
  // Most messages share a few Status/X-Status pairs.
  const letters = new Map<string, string>();
  for (const { message: m, uid, virtualUid } of numbered) {
    present.add(uid);
    const statusKey = `${m.status}\n${m.xStatus}`;
    let flagLetters = letters.get(statusKey);
    if (flagLetters === undefined) letters.set(statusKey, (flagLetters = flagsToIndexLetters(flagsFromStatus(m.status, m.xStatus))));
    const keywords = m.keywords;
    const file = encodeLocation({
      from: m.from,
      hdr: m.hdr,
      hdrEnd: m.hdrEnd,
      body: m.body,
      end: m.end,
      virtualUid,
      unquote: false,
      bodyOnly: m.bodyOnly,
      hash: m.hash,
    });
    const row: IndexedMessage | undefined = byUid.get(uid);
    // The same location string holds the same hash.
    const rowHash = row && (row.file === file ? m.hash : decodeLocation(row.file)?.hash);
    if (!row || rowHash !== m.hash) {
      if (row) changes.push({ kind: 'expunge', uid: row.uid, guid: row.guid });
      changes.push({
        kind: 'add',
        message: { uid, guid: m.guid ?? m.hash, file, flagLetters, keywords: [...keywords], receivedDate: m.receivedDate, size: m.size },
      });
      continue;
    }
    const flagsChanged = row.flagLetters !== flagLetters || !sameSet(row.keywords, keywords);
    if (flagsChanged || row.file !== file || row.size !== m.size) {
      changes.push({ kind: 'update', message: { ...row, file, flagLetters, keywords: [...keywords], size: m.size }, bumpModseq: flagsChanged || row.size !== m.size });
    }
  }
  for (const r of rows) if (!present.has(r.uid)) changes.push({ kind: 'expunge', uid: r.uid, guid: r.guid });
  for (const n of numbered) if (n.uid >= next) next = n.uid + 1;
  ctx.index.applyChanges(mailbox.id, changes, { uidNext: next, fingerprint: fp.safe ? fp.value : null });
  return { mailbox: ctx.index.mailboxByGuid(mailbox.guid)!, numbered };
}
