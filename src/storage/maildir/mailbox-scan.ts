/**
 * Bringing the change index up to date with one Maildir mailbox directory.
 *
 * Whatever changed since the last scan, by whichever program (a MUA renaming files, a
 * delivery agent dropping mail in new/, Dovecot itself), becomes modseqs here. New files
 * get UIDs in `dovecot-uidlist` exactly as Dovecot would give them; files the uidlist
 * names but that are gone become expunges carrying their GUIDs.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, renameSync, statSync, type Stats } from 'node:fs';
import { writeWholeSync } from '../safe-fs.js';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ChangeIndex, IndexedMailbox, IndexedMessage, MessageChange } from '../index/change-index.js';
import { fsError } from '../../model/errors.js';
import { failpoint } from '../../model/failpoint.js';
import type { MailboxName } from '../store.js';
import { Dotlock } from './dotlock.js';
import { generateBasename, hasKeywordLetters, lettersToFlags, parseMaildirFilename, FLAG_LETTERS } from './filename.js';
import { indexRow, keywordList } from './index-row.js';
import {
  afterOwnRewrite,
  cleanStaleTmp,
  fingerprint,
  listedMessage,
  listMessageFiles,
  lookAgain,
  readKeywords,
  readUidlist,
  readUidlistGuid,
  uidsByBasename,
  UIDLIST_FILENAME,
  type FileListing,
  type Fingerprint,
  type MessageFile,
  type UidlistRead,
} from './mailbox-files.js';
import { formatUidlist, formatUidlistEntries, nextUidOf, uidlistWantsRewrite, type Uidlist, type UidlistEntry } from './uidlist.js';
import { nextUidValidity } from './uidvalidity.js';

export interface ScanContext {
  root: string;
  dir: string;
  name: MailboxName;
  index: ChangeIndex;
  lockTimeoutSeconds: number;
  fsync: boolean;
  warn: (msg: string) => void;
  /**
   * Per store session: the fingerprint each mailbox (by GUID) had when this process last scanned
   * it. Equal now means nothing touched the directory since, so the scan can be skipped even
   * when the mtimes are too fresh to be trusted across runs. This is never persisted: a change
   * made within the same mtime tick as our scan is missed at worst until the next run.
   */
  scannedThisSession: Map<string, string>;
}

/** Per mailbox directory, what its last listing in this process left out (see FileListing.skipped). */
export const skippedEntries = new Map<string, string[]>();

let basenameCounter = 0;
/** Asked once: a save names every file it writes, and each hostname() is a system call. */
let host: string | undefined;

export function newBasename(): string {
  host ??= hostname();
  return generateBasename(Date.now(), process.pid, host, ++basenameCounter);
}

export function newMailboxGuid(): string {
  return randomBytes(16).toString('hex');
}

const SYSTEM_LETTERS = new Set(Object.values(FLAG_LETTERS));

/** System-flag letters of a Maildir flag string, sorted. */
export function systemLetters(flagLetters: string): string {
  return [...flagLetters].filter((c) => SYSTEM_LETTERS.has(c)).sort().join('');
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}

/** What a scan has to write to the uidlist, from its first look at the mailbox. */
interface UidlistPlan {
  /**
   * `none`; `missing` when the only difference is lines whose files are gone, which needs no
   * write at all (see scanMailbox); `append` for lines of new files, added at the end as Dovecot
   * adds them; `write` for the whole file: a repair, or lines Dovecot would compress away.
   */
  need: 'none' | 'missing' | 'append' | 'write';
  /** For `append`: the basenames of the listed files the uidlist lacks. */
  fresh: string[];
  /** How many lines name a file the listing lacks. */
  missing: number;
}

const WRITE_WHOLE: UidlistPlan = { need: 'write', fresh: [], missing: 0 };

function planUidlist(read: UidlistRead, listing: FileListing): UidlistPlan {
  if (read.state !== 'ok') return WRITE_WHOLE;
  const u = read.uidlist;
  if (u.version !== 3 || !u.mailboxGuid || listing.duplicates.length > 0) return WRITE_WHOLE;
  let present = 0;
  for (const e of u.entries) if (listing.byBasename.has(e.basename)) present++;
  const missing = u.entries.length - present;
  // Entries have distinct basenames (the parser drops repeats): any further listed file is one
  // the uidlist lacks.
  if (listing.byBasename.size === present) return { need: missing > 0 ? 'missing' : 'none', fresh: [], missing };
  // Lines added after a cut last line would join it, and lines Dovecot would refuse are a
  // repair's business: such a file is written whole.
  if (!read.clean) return WRITE_WHOLE;
  // Lines taken from the index (uidlistAsIndexed) lack those whose files were gone: which files
  // are new, and whether to compress, is for the real file to say, read under the lock.
  if (read.asIndexed) return { need: 'append', fresh: [], missing };
  const uids = uidsByBasename(u);
  const fresh: string[] = [];
  for (const basename of listing.byBasename.keys()) if (!uids.has(basename)) fresh.push(basename);
  return uidlistWantsRewrite(u.entries.length, present, fresh.length) ? WRITE_WHOLE : { need: 'append', fresh, missing };
}

/**
 * The basenames of uidlist lines without a listed file whose message the index still holds (new
 * expunges, to be proven by a second look); every line without a file when the index does not
 * know the mailbox. `indexed` is the index's rows of the mailbox, in UID order, as the entries are.
 */
function goneStillIndexed(uidlist: Uidlist, listing: FileListing, indexed: readonly IndexedMessage[] | undefined): Set<string> {
  const gone = new Set<string>();
  let r = 0;
  for (const e of uidlist.entries) {
    if (listing.byBasename.has(e.basename)) continue;
    if (indexed) {
      while (r < indexed.length && indexed[r]!.uid < e.uid) r++;
      if (r >= indexed.length || indexed[r]!.uid !== e.uid) continue;
    }
    gone.add(e.basename);
  }
  return gone;
}

/**
 * Lines naming a listed file under a UID the index saw expunged (the same UIDVALIDITY, no message
 * at it now): its file came back under the same name (restored from a backup, moved out and back
 * by a client). Dovecot gives such a file a new UID ("Expunged message reappeared") and so do
 * we: a UID reported expunged never names a message again. Only a recorded expunge counts: a
 * line below the UIDNEXT the index recorded can also be mail another program delivered while a
 * scan waited for the uidlist lock (that scan read the line, not the file), which keeps its UID.
 * The files a crashed save of ours left keep the UIDs that save meant; with no record of the
 * mailbox (a first scan, a lost index) the lines are taken as they are.
 */
function reappeared(ctx: ScanContext, uidlist: Uidlist, listing: FileListing, known: IndexedMailbox | undefined, rowsOf: (id: number) => readonly IndexedMessage[]): Map<string, number> {
  const back = new Map<string, number>();
  if (!known || known.uidValidity !== uidlist.uidValidity || known.guid !== uidlist.mailboxGuid) return back;
  let rows: readonly IndexedMessage[] | undefined;
  let r = 0;
  let pending: Map<string, unknown> | undefined;
  for (const e of uidlist.entries) {
    if (e.uid >= known.uidNext) break;
    if (!listing.byBasename.has(e.basename)) continue;
    rows ??= rowsOf(known.id);
    while (r < rows.length && rows[r]!.uid < e.uid) r++;
    if (r < rows.length && rows[r]!.uid === e.uid) continue;
    pending ??= ctx.index.pendingSaves(known.id);
    if (!pending.has(e.basename)) back.set(e.basename, e.uid);
  }
  if (back.size === 0) return back;
  const expunged = ctx.index.expungedAmong(known.id, [...back.values()]);
  for (const [basename, uid] of back) if (!expunged.has(uid)) back.delete(basename);
  return back;
}

/** Dovecot orders new mail by the delivery time its name begins with; others sort after. */
function deliveryOrder(a: MessageFile, b: MessageFile): number {
  const ka = /^(\d+)\.(?:M(\d+))?/.exec(a.parsed.basename);
  const kb = /^(\d+)\.(?:M(\d+))?/.exec(b.parsed.basename);
  if (ka && kb) {
    const d = Number(ka[1]) - Number(kb[1]) || Number(ka[2] ?? 0) - Number(kb[2] ?? 0);
    if (d !== 0) return d;
  } else if (ka || kb) return ka ? -1 : 1;
  return a.parsed.basename < b.parsed.basename ? -1 : a.parsed.basename > b.parsed.basename ? 1 : 0;
}

/**
 * UIDs for files the uidlist lacks, as Dovecot gives them (in delivery order, from the next
 * UID), except that files a crashed save of ours left behind get the UIDs and GUIDs that save
 * meant them to have.
 */
function numberFiles(
  ctx: ScanContext,
  uidlist: Uidlist,
  known: IndexedMailbox | undefined,
  files: MessageFile[],
  back: MessageFile[] = [],
): { entries: UidlistEntry[]; next: number; meant: number } {
  let next = nextUidOf(uidlist);
  // Dovecot appends entries without raising the header's N, so when the last lines are lost
  // (a cut write) the uidlist alone would hand their UIDs out again, maybe to other mail.
  // The index remembers how far UIDs went.
  if (known && known.uidValidity === uidlist.uidValidity) next = Math.max(next, known.uidNext);
  const meant = known ? ctx.index.pendingSaves(known.id) : new Map<string, { uid: number | undefined; guid: string }>();
  const byWantedUid = (f: MessageFile) => meant.get(f.parsed.basename)?.uid ?? Infinity;
  const entries: UidlistEntry[] = [];
  for (const f of files.sort(deliveryOrder).sort((a, b) => byWantedUid(a) - byWantedUid(b))) {
    const p = meant.get(f.parsed.basename);
    const uid = p?.uid !== undefined && p.uid >= next ? p.uid : next;
    next = uid + 1;
    const guid = p && p.guid !== f.parsed.basename ? { guid: p.guid } : {};
    entries.push({ uid, basename: f.parsed.basename, ...guid, extra: [] });
  }
  // Dovecot numbers the directory's new files first and finds a reappearance when it brings its
  // index up to date after them. The new line is a new file's: the old line's G, sizes and other
  // fields went with it, as they do in Dovecot.
  for (const f of back.sort(deliveryOrder)) entries.push({ uid: next++, basename: f.parsed.basename, extra: [] });
  return { entries, next, meant: meant.size };
}

/** What a scan wrote to the uidlist, and the uidlist and listing it went by. */
interface UidlistWrite {
  uidlist: Uidlist;
  /** Lines appended after `uidlist`'s own entries (empty after a whole rewrite, which holds them). */
  appended: UidlistEntry[];
  listing: FileListing;
  /** What this session may take as "unchanged since we looked" (see scanMailbox). */
  fingerprint: string;
}

/**
 * Adds lines for new files at the end of the uidlist under its lock, as Dovecot does, instead of
 * writing a 100k-line file anew for a few deliveries. The header's next UID stays as it is: like
 * Dovecot, every reader takes the next UID past the last line too. The uidlist is read again
 * under the lock, where Dovecot may have listed some of the files meanwhile, or rewritten it;
 * when that read calls for a whole rewrite, it is done, still under the lock. Files back under
 * lines of expunged messages (see reappeared) are given new UIDs here too, which takes a whole
 * write, as it does in Dovecot: a line cannot be moved by appending.
 */
async function appendToUidlist(
  ctx: ScanContext,
  first: Uidlist,
  listing: FileListing,
  fresh: string[],
  before: Fingerprint,
  rowsOf: (id: number) => readonly IndexedMessage[],
): Promise<UidlistWrite> {
  const path = join(ctx.dir, UIDLIST_FILENAME);
  const lock = await Dotlock.acquire(path, { timeoutSeconds: ctx.lockTimeoutSeconds, fsync: ctx.fsync });
  try {
    const read = readUidlist(ctx.dir, ctx.warn);
    let uidlist = first;
    // Always so when `first` came from the index (uidlistAsIndexed), which is never the file.
    if (read.state !== 'ok' || read.uidlist !== first) {
      const again = planUidlist(read, listing);
      if (again.need === 'write') return rewriteLocked(ctx, lock, rowsOf);
      if (read.state !== 'ok') throw new Error('unreachable: a uidlist that cannot be read is written whole');
      uidlist = read.uidlist;
      fresh = again.need === 'append' ? again.fresh : [];
    }
    const known = ctx.index.mailboxByGuid(uidlist.mailboxGuid!);
    const back = reappeared(ctx, uidlist, listing, known, rowsOf);
    if (back.size > 0) return renumberLocked(ctx, lock, uidlist, known, listing, fresh, back, before);
    if (fresh.length === 0) return { uidlist, appended: [], listing, fingerprint: before.value };
    const { entries, meant } = numberFiles(ctx, uidlist, known, fresh.map((b) => listedMessage(listing, b)!));
    const text = formatUidlistEntries(entries, uidlist.entries.at(-1)?.uid ?? 0);
    failpoint('scan-before-uidlist');
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
      try {
        writeWholeSync(fd, Buffer.from(text, 'utf8'));
        if (ctx.fsync) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      throw fsError(err, `appending to ${path}`);
    }
    if (known && meant > 0) ctx.index.clearPendingSaves(known.id);
    failpoint('scan-after-uidlist');
    return { uidlist, appended: entries, listing, fingerprint: afterOwnRewrite(before, fingerprint(ctx.dir)) };
  } finally {
    lock.release();
  }
}


/**
 * The uidlist written whole with the lines of reappeared files (`back`, by basename with their old
 * UIDs) dropped and given again after the new files' lines, under the next UIDs; every other line,
 * those of expunged files included, stays as it was.
 */
function renumberLocked(
  ctx: ScanContext,
  lock: Dotlock,
  uidlist: Uidlist,
  known: IndexedMailbox | undefined,
  listing: FileListing,
  fresh: string[],
  back: ReadonlyMap<string, number>,
  before: Fingerprint,
): UidlistWrite {
  const kept = uidlist.entries.filter((e) => !back.has(e.basename));
  const backFiles = [...back.keys()].map((b) => listedMessage(listing, b)!);
  const { entries, next, meant } = numberFiles(ctx, uidlist, known, fresh.map((b) => listedMessage(listing, b)!), backFiles);
  const written: Uidlist = { ...uidlist, nextUid: next, entries: [...kept, ...entries] };
  return replaceLocked(ctx, lock, written, { known, meant, back, numbered: entries, listing, before });
}

/**
 * Writes the uidlist whole under its lock, then forgets the crashed saves whose files it numbered
 * and says which files came back under expunged messages' lines (their new UIDs in `numbered`).
 */
function replaceLocked(
  ctx: ScanContext,
  lock: Dotlock,
  written: Uidlist,
  w: { known: IndexedMailbox | undefined; meant: number; back: ReadonlyMap<string, number>; numbered: readonly UidlistEntry[]; listing: FileListing; before: Fingerprint },
): UidlistWrite {
  failpoint('scan-before-uidlist');
  lock.replace(formatUidlist(written));
  if (w.known && w.meant > 0) ctx.index.clearPendingSaves(w.known.id);
  failpoint('scan-after-uidlist');
  for (const e of w.numbered) {
    const old = w.back.get(e.basename);
    if (old !== undefined) ctx.warn(`${ctx.dir}: expunged message reappeared (old UID ${old}, file ${e.basename}); it is UID ${e.uid} now`);
  }
  return { uidlist: written, appended: [], listing: w.listing, fingerprint: afterOwnRewrite(w.before, fingerprint(ctx.dir)) };
}

/**
 * Repairs and extends the uidlist under its lock: renames duplicate basenames apart, drops
 * entries whose files are gone, gives new files UIDs. A corrupt or missing uidlist is rebuilt
 * from the change index when the index knows this mailbox, keeping its UIDs and UIDVALIDITY.
 */
async function rewriteUidlist(ctx: ScanContext, rowsOf: (id: number) => readonly IndexedMessage[]): Promise<UidlistWrite> {
  const lock = await Dotlock.acquire(join(ctx.dir, UIDLIST_FILENAME), {
    timeoutSeconds: ctx.lockTimeoutSeconds,
    fsync: ctx.fsync,
  });
  try {
    return rewriteLocked(ctx, lock, rowsOf);
  } finally {
    lock.release();
  }
}

function rewriteLocked(ctx: ScanContext, lock: Dotlock, rowsOf: (id: number) => readonly IndexedMessage[]): UidlistWrite {
  const read = readUidlist(ctx.dir, ctx.warn);
  const known = indexedMailbox(ctx, read);
  let beforeListing = fingerprint(ctx.dir);
  let listing = listMessageFiles(ctx.dir, ctx.warn);
  // Of several files with one basename, the one the index already has keeps the name and so
  // its UID: otherwise whichever readdir lists first would win, and a UID a client has cached
  // could start reading as the newcomer's body.
  const indexedFiles = new Set(known && listing.duplicates.length > 0 ? rowsOf(known.id).map((m) => m.file) : []);
  for (const dup of listing.duplicates) {
    const basename = dup.parsed.basename;
    let victim = dup;
    const holder = listedMessage(listing, basename)!;
    if (indexedFiles.has(dup.file) && !indexedFiles.has(holder.file)) {
      listing.byBasename.set(basename, dup.file.slice(4));
      if (dup.file.startsWith('new/')) listing.inNew.add(basename);
      else listing.inNew.delete(basename);
      victim = holder;
    }
    const fresh = newBasename();
    const target = `${victim.file.slice(0, 4)}${victim.parsed.info === undefined ? fresh : `${fresh}:${victim.parsed.info}`}`;
    ctx.warn(`${join(ctx.dir, victim.file)}: duplicate message basename, renamed to ${target}`);
    renameSync(join(ctx.dir, victim.file), join(ctx.dir, target));
  }
  if (listing.duplicates.length > 0) {
    beforeListing = fingerprint(ctx.dir);
    listing = listMessageFiles(ctx.dir, ctx.warn);
  }

  let uidlist: Uidlist;
  if (read.state === 'ok') {
    uidlist = { ...read.uidlist, version: 3, entries: [...read.uidlist.entries] };
  } else {
    if (read.state === 'corrupt') ctx.warn(`${read.reason}; rebuilding it`);
    uidlist = recoverUidlist(ctx, known);
  }
  if (!uidlist.mailboxGuid) uidlist.mailboxGuid = newMailboxGuid();

  // A repair read from the file keeps the lines' UIDs, so a file back under an expunged one's
  // line needs a new UID here too; lines rebuilt from the index are its rows and hold none.
  const back = read.state === 'ok' ? reappeared(ctx, uidlist, listing, known, rowsOf) : new Map<string, number>();
  // Entries whose file is gone are dropped without a word: Dovecot itself leaves them behind
  // after every expunge and cleans them up at its next rewrite, so they are ordinary.
  const kept: UidlistEntry[] = [];
  const listed = new Set<string>();
  for (const e of uidlist.entries) {
    if (listing.byBasename.has(e.basename) && !back.has(e.basename)) {
      kept.push(e);
      listed.add(e.basename);
    }
  }
  const files: MessageFile[] = [];
  for (const basename of listing.byBasename.keys()) if (!listed.has(basename) && !back.has(basename)) files.push(listedMessage(listing, basename)!);
  const backFiles = [...back.keys()].map((b) => listedMessage(listing, b)!);
  const { entries, next, meant } = numberFiles(ctx, uidlist, known, files, backFiles);
  kept.push(...entries);
  uidlist = { ...uidlist, version: 3, nextUid: next, entries: kept };
  return replaceLocked(ctx, lock, uidlist, { known, meant, back, numbered: entries, listing, before: beforeListing });
}

/**
 * The index's record of the mailbox this uidlist belongs to: by the uidlist's GUID, or, when the
 * uidlist cannot be read, by the name the mailbox had at the last scan.
 */
function indexedMailbox(ctx: ScanContext, read: ReturnType<typeof readUidlist>): IndexedMailbox | undefined {
  if (read.state === 'ok') return read.uidlist.mailboxGuid ? ctx.index.mailboxByGuid(read.uidlist.mailboxGuid) : undefined;
  const key = JSON.stringify(ctx.name);
  return ctx.index.listMailboxes().find((m) => JSON.stringify(m.name) === key);
}

function recoverUidlist(ctx: ScanContext, known: IndexedMailbox | undefined): Uidlist {
  if (!known) {
    return { version: 3, uidValidity: nextUidValidity(ctx.root), nextUid: 1, mailboxGuid: newMailboxGuid(), headerExtra: [], entries: [] };
  }
  const entries: UidlistEntry[] = ctx.index.messages(known.id).map((m) => {
    const basename = m.file.slice(4).split(':', 1)[0]!;
    return m.guid === basename ? { uid: m.uid, basename, extra: [] } : { uid: m.uid, basename, guid: m.guid, extra: [] };
  });
  return {
    version: 3,
    uidValidity: known.uidValidity,
    nextUid: Math.max(known.uidNext, (entries.at(-1)?.uid ?? 0) + 1),
    mailboxGuid: known.guid,
    headerExtra: [],
    entries,
  };
}

const NO_EXTRA = Object.freeze([]) as unknown as [string, string][];

/**
 * The uidlist as the index's rows say it was, without reading it, when it is the very file the
 * last scan read: its mtime and inode are the ones that scan's fingerprint holds, and that
 * fingerprint was only kept because every mtime was then two seconds old, so any write since
 * would have moved it. That scan left a row for each line whose file was there; any write of
 * ours since drops the fingerprint. So the rows are the uidlist's lines, less lines without
 * files, which only matter to files the rows lack: those make a scan append, and appendToUidlist
 * reads the real file under its lock before it writes a line (as does every whole rewrite). A
 * scan of a mailbox where mail was only flagged or removed reads no uidlist at all.
 */
function uidlistAsIndexed(ctx: ScanContext, known: IndexedMailbox, fp: Fingerprint): { uidlist: Uidlist; rows: IndexedMessage[] } | undefined {
  const stored = known.scanFingerprint?.split(':');
  if (stored?.length !== 4 || stored[2] === '-' || stored[2] !== fp.parts[2]) return undefined;
  const rows = ctx.index.messages(known.id);
  const entries: UidlistEntry[] = rows.map((r) => {
    const colon = r.file.indexOf(':', 4);
    const basename = colon < 0 ? r.file.slice(4) : r.file.slice(4, colon);
    return r.guid === basename ? { uid: r.uid, basename, extra: NO_EXTRA } : { uid: r.uid, basename, guid: r.guid, extra: NO_EXTRA };
  });
  return { uidlist: { version: 3, uidValidity: known.uidValidity, nextUid: known.uidNext, mailboxGuid: known.guid, headerExtra: [], entries }, rows };
}

/** Scans the mailbox and returns its index record, skipping the work when mtimes prove nothing changed. */
export async function scanMailbox(ctx: ScanContext): Promise<IndexedMailbox> {
  const fp = fingerprint(ctx.dir);
  const headerGuid = readUidlistGuid(ctx.dir);
  const known = headerGuid ? ctx.index.mailboxByGuid(headerGuid) : undefined;
  if (known) {
    const unchanged = fp.safe ? known.scanFingerprint === fp.value : false;
    if (unchanged || ctx.scannedThisSession.get(known.guid) === fp.value) {
      if (JSON.stringify(known.name) !== JSON.stringify(ctx.name)) ctx.index.renameMailbox(known.id, ctx.name);
      return { ...known, name: ctx.name };
    }
  }

  cleanStaleTmp(ctx.dir, ctx.warn);
  // The index's rows of the mailbox the uidlist names, when read before the diff needs them.
  let rowsOf: { id: number; rows: IndexedMessage[] } | undefined;
  const asIndexed = known && uidlistAsIndexed(ctx, known, fp);
  if (asIndexed) rowsOf = { id: known.id, rows: asIndexed.rows };
  // Read once for the uidlist's writers and the diff alike (no write of ours to the index comes between).
  const rowsFor = (id: number): IndexedMessage[] => {
    if (rowsOf?.id !== id) rowsOf = { id, rows: ctx.index.messages(id) };
    return rowsOf.rows;
  };
  let read: UidlistRead | undefined = asIndexed ? { state: 'ok', uidlist: asIndexed.uidlist, clean: true, asIndexed: true } : readUidlist(ctx.dir, ctx.warn);
  let listing: FileListing | undefined = listMessageFiles(ctx.dir, ctx.warn);
  let uidlist: Uidlist | undefined;
  let appended: UidlistEntry[] = [];
  // A file renamed while we listed can look missing. Whether it is gone is decided only by a
  // second look (or by the listing a whole rewrite takes under the uidlist lock), never by this one.
  // What this session may take as "unchanged since we looked": after our own write, the
  // mailbox as that write left it, so the next read in this run does not scan it all again.
  let seen = fp.value;
  let plan = planUidlist(read, listing);
  if (read.state === 'ok' && plan.missing > 0 && plan.need !== 'write') {
    // Lines whose files are gone are what Dovecot leaves after every expunge; its next rewrite
    // drops them, and so does ours. Rewriting here would write to a mailbox that is only being
    // read (the source of a backup or of sync -1). Gone is decided by a second look at the
    // directories for those files, so a file renamed during the first one is not taken for an
    // expunge; lines the index already holds no message for were proven gone before.
    const named = read.uidlist.mailboxGuid ? ctx.index.mailboxByGuid(read.uidlist.mailboxGuid) : undefined;
    const indexed = rowsOf?.rows ?? (named && named.uidValidity === read.uidlist.uidValidity ? rowsFor(named.id) : undefined);
    const gone = goneStillIndexed(read.uidlist, listing, indexed);
    // Files found again are lines of the uidlist, so they change how many lines lack a file
    // and nothing else: no new file, and no reason to write more than planned.
    const found = gone.size > 0 ? lookAgain(ctx.dir, listing, gone, ctx.warn) : 0;
    if (found > 0) plan = { ...plan, missing: plan.missing - found, need: plan.need === 'missing' && plan.missing === found ? 'none' : plan.need };
  }
  // A file back under the line of an expunged message takes a write even when no file is new;
  // lines taken from the index hold no such line, and their file makes the plan an append.
  if (plan.need !== 'write' && plan.need !== 'append' && read.state === 'ok' && !read.asIndexed) {
    const named = read.uidlist.mailboxGuid ? ctx.index.mailboxByGuid(read.uidlist.mailboxGuid) : undefined;
    if (reappeared(ctx, read.uidlist, listing, named, rowsFor).size > 0) plan = { ...plan, need: 'append', fresh: [] };
  }
  if (plan.need === 'write') {
    ({ uidlist, listing, fingerprint: seen } = await rewriteUidlist(ctx, rowsFor));
  } else if (plan.need === 'append') {
    ({ uidlist, appended, listing, fingerprint: seen } = await appendToUidlist(ctx, (read as { uidlist: Uidlist }).uidlist, listing, plan.fresh, fp, rowsFor));
  } else {
    uidlist = (read as { uidlist: Uidlist }).uidlist;
  }
  const guid = uidlist.mailboxGuid!;
  let mailbox = ctx.index.mailboxByGuid(guid);
  if (!mailbox) mailbox = ctx.index.addMailbox(guid, ctx.name, uidlist.uidValidity);
  else if (mailbox.uidValidity !== uidlist.uidValidity) {
    ctx.warn(`${ctx.dir}: UIDVALIDITY changed from ${mailbox.uidValidity} to ${uidlist.uidValidity}; every message counts as new`);
    ctx.index.resetMailbox(mailbox.id, uidlist.uidValidity);
    rowsOf = undefined;
  }
  if (JSON.stringify(mailbox.name) !== JSON.stringify(ctx.name)) ctx.index.renameMailbox(mailbox.id, ctx.name);

  const rows = rowsFor(mailbox.id);
  rowsOf = undefined;
  const changes = diffWithIndex(ctx, uidlist.entries, appended, listing, rows);
  // A mailbox with entries we refuse is listed again by every run, so each run warns of them
  // and knows its copy is incomplete.
  skippedEntries.set(ctx.dir, listing.skipped);
  const trusted = fp.safe && listing.skipped.length === 0;
  const uidNext = Math.max(nextUidOf(uidlist), (appended.at(-1)?.uid ?? 0) + 1);
  // The directory listing and the parsed uidlist are the largest things a scan of a big mailbox
  // holds (a few hundred bytes a message): they go before the index takes the changes and
  // builds its rows, not after.
  read = listing = uidlist = undefined;
  appended = [];
  ctx.index.applyChanges(mailbox.id, changes, { uidNext, fingerprint: trusted ? fp.value : null });
  // Across runs only the fingerprint seen first is known to match what the index now holds.
  ctx.scannedThisSession.set(guid, seen);
  return ctx.index.mailboxByGuid(guid)!;
}

function diffWithIndex(
  ctx: ScanContext,
  entries: readonly UidlistEntry[],
  appended: readonly UidlistEntry[],
  listing: FileListing,
  indexed: IndexedMessage[],
): MessageChange[] {
  const keywordNames = readKeywords(ctx.dir, ctx.warn);
  const representable = new Set(keywordNames.filter((k): k is string => k !== undefined));
  // A mailbox has few distinct flag strings: decode each once.
  const decoded = new Map<string, { flagLetters: string; keywords: string[] }>();
  const decode = (letters: string) => {
    let d = decoded.get(letters);
    if (!d) {
      const keywords = lettersToFlags(letters).keywordIndexes.map((i) => keywordNames[i]).filter((k): k is string => k !== undefined);
      d = { flagLetters: systemLetters(letters), keywords: [...new Set(keywords)] };
      decoded.set(letters, d);
    }
    return d;
  };
  const changes: MessageChange[] = [];
  let relisted: FileListing | undefined;
  // Both lists are in UID order (the parser drops out-of-order entries, appended lines come
  // after them; the index sorts): walk them side by side instead of building maps of a
  // 100k-message mailbox.
  let r = 0;
  const step = (e: UidlistEntry) => {
    while (r < indexed.length && indexed[r]!.uid < e.uid) {
      const gone = indexed[r++]!;
      changes.push({ kind: 'expunge', uid: gone.uid, guid: gone.guid });
    }
    const row = r < indexed.length && indexed[r]!.uid === e.uid ? indexed[r++] : undefined;
    const name = listing.byBasename.get(e.basename);
    if (name === undefined) {
      if (row) changes.push({ kind: 'expunge', uid: row.uid, guid: row.guid });
      return;
    }
    const guid = e.guid ?? e.basename;
    const inNew = listing.inNew.size > 0 && listing.inNew.has(e.basename);
    // The same file name as at the last scan, no keyword letters and none recorded: nothing can
    // have changed (most of a large mailbox, on every rescan). Told by comparing the names, so
    // the name is parsed only when it changed.
    if (row && row.guid === guid && row.keywords.length === 0 && sameFile(row.file, inNew, name) && !hasKeywordLetters(name)) return;
    let file = (inNew ? 'new/' : 'cur/') + name;
    let parsed = parseMaildirFilename(name);
    if (!row || row.guid !== guid) {
      if (row) changes.push({ kind: 'expunge', uid: row.uid, guid: row.guid });
      let st = statIfThere(join(ctx.dir, file));
      if (!st) {
        // Renamed since the listing (moved to cur/, flagged)? A file left without a row under a
        // UID the index counts as given out would read as an expunged message reappearing at the
        // next scan and lose its UID: it is looked for again, in a listing made once for all.
        relisted ??= listMessageFiles(ctx.dir, () => {});
        const now = relisted.byBasename.get(e.basename);
        if (now === undefined) return; // gone: an expunge we never saw the message of
        file = (relisted.inNew.has(e.basename) ? 'new/' : 'cur/') + now;
        parsed = parseMaildirFilename(now);
        st = statIfThere(join(ctx.dir, file));
        if (!st) return;
      }
      const { flagLetters, keywords: fileKeywords } = decode(parsed.flagLetters);
      const size = parsed.size ?? st.size;
      changes.push({ kind: 'add', message: indexRow(e.uid, guid, file, flagLetters, keywordList([...fileKeywords]), st.mtimeMs, size) });
      return;
    }
    const { flagLetters, keywords: fileKeywords } = decode(parsed.flagLetters);
    // Keywords past the 26 a filename can carry live only in the index; keep them.
    const extra = row.keywords.filter((k) => !representable.has(k));
    const keywords = keywordList(extra.length === 0 ? [...fileKeywords] : [...new Set([...fileKeywords, ...extra])]);
    const flagsChanged = row.flagLetters !== flagLetters || !sameSet(row.keywords, keywords);
    if (flagsChanged || row.file !== file) {
      changes.push({
        kind: 'update',
        message: { ...row, file, flagLetters, keywords },
        bumpModseq: flagsChanged,
      });
    }
  };
  for (const e of inUidOrder(entries)) step(e);
  for (const e of inUidOrder(appended)) step(e);
  for (; r < indexed.length; r++) changes.push({ kind: 'expunge', uid: indexed[r]!.uid, guid: indexed[r]!.guid });
  return changes;
}

function statIfThere(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** Whether a row's file (`cur/NAME`, `new/NAME`) is the listed `name` in new/ or cur/, without building the path. */
function sameFile(file: string, inNew: boolean, name: string): boolean {
  return file.length === name.length + 4 && file.endsWith(name) && file.startsWith(inNew ? 'new/' : 'cur/');
}

function inUidOrder(entries: readonly UidlistEntry[]): readonly UidlistEntry[] {
  for (let i = 1; i < entries.length; i++) if (entries[i - 1]!.uid >= entries[i]!.uid) return [...entries].sort((a, b) => a.uid - b.uid);
  return entries;
}
