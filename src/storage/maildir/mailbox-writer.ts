/**
 * Changing one Maildir mailbox: saving, re-flagging and expunging messages, and updating
 * the uidlist header. Every change reaches the disk first and the change index second, so a
 * crash in between costs at most a rescan, never a message.
 */
import {
  closeSync,
  write,
  statSync,
  fsyncSync,
  openSync,
  renameSync,
  linkSync,
  unlinkSync,
  utimesSync,
  rmSync,
  constants,
} from 'node:fs';
import { registerCleanup } from '../../model/cleanup.js';
import { readFileSafe, writeNewFileSync, writeWholeSync } from '../safe-fs.js';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { dataError, fsError } from '../../model/errors.js';
import { failpoint } from '../../model/failpoint.js';
import type { IndexedMailbox, MessageChange } from '../index/change-index.js';
import type { FlagUpdate, MailboxUpdate, SaveRequest, SavedMessage, SystemFlag } from '../store.js';
import { Dotlock } from './dotlock.js';
import { chownFd, chownPath, ownerFor, type Owner } from './ownership.js';
import { flagsToLetters, formatMaildirFilename, isValidBasename, lettersToFlags, parseMaildirFilename, withSizes } from './filename.js';
import { formatKeywordsFile } from './keywords-file.js';
import { indexRow, keywordList } from './index-row.js';
import { KEYWORDS_FILENAME, listMessageFiles, OWN_TMP_SUFFIX, readKeywords, readUidlist, UIDLIST_FILENAME } from './mailbox-files.js';
import { newBasename, systemLetters, type ScanContext } from './mailbox-scan.js';
import { formatUidlist, formatUidlistEntries, nextUidOf, parseUidlist, uidlistWantsRewrite, type Uidlist, type UidlistEntry } from './uidlist.js';
import { uidlistLineCount, uidlistNames } from './uidlist-lines.js';
import { fsyncDir } from '../fsync-dir.js';

/** Saves are committed (uidlist + index) in batches this large, to bound re-work after a crash. */
const BATCH_MESSAGES = 200;
const BATCH_BYTES = 32 * 1024 * 1024;
/** Bodies up to this size are written in one call. */
const SMALL_WRITE_BYTES = 1024 * 1024;
/** Dovecot's filename letters stop at z. */
const MAX_FILENAME_KEYWORDS = 26;

export async function withUidlistLock<T>(ctx: ScanContext, fn: (lock: Dotlock, uidlist: Uidlist) => T): Promise<T> {
  const lock = await Dotlock.acquire(join(ctx.dir, UIDLIST_FILENAME), { timeoutSeconds: ctx.lockTimeoutSeconds, fsync: ctx.fsync });
  try {
    const read = readUidlist(ctx.dir, ctx.warn);
    if (read.state !== 'ok') throw dataError(`${join(ctx.dir, UIDLIST_FILENAME)} changed under us (${read.state}); run again`);
    return fn(lock, read.uidlist);
  } finally {
    lock.release();
  }
}

/** Maps keyword names to filename letter indexes, adding names to `dovecot-keywords` as needed. */
export async function keywordIndexes(ctx: ScanContext, names: Iterable<string>): Promise<Map<string, number>> {
  const wanted = new Set(names);
  const current = readKeywords(ctx.dir, ctx.warn);
  const missing = [...wanted].filter((k) => !current.includes(k));
  const free = current.length < MAX_FILENAME_KEYWORDS || current.includes(undefined);
  if (missing.length > 0 && free) {
    // The uidlist lock guards dovecot-keywords too, as in Dovecot.
    await withUidlistLock(ctx, () => {
      const fresh = readKeywords(ctx.dir, ctx.warn);
      for (const k of missing) {
        if (fresh.includes(k)) continue;
        let slot = fresh.indexOf(undefined);
        if (slot < 0) slot = fresh.length;
        if (slot >= MAX_FILENAME_KEYWORDS) break;
        fresh[slot] = k;
      }
      const path = join(ctx.dir, KEYWORDS_FILENAME);
      const tmp = `${path}.${process.pid}.tmp`;
      writeNewFileSync(tmp, formatKeywordsFile(fresh), 0o644);
      chownPath(tmp, ownerFor(ctx.dir));
      renameSync(tmp, path);
      current.splice(0, current.length, ...fresh);
    });
  }
  const map = new Map<string, number>();
  current.forEach((k, i) => {
    if (k !== undefined && wanted.has(k)) map.set(k, i);
  });
  return map;
}

function letterFor(flags: readonly SystemFlag[], keywords: readonly string[], map: Map<string, number>, keep = ''): string {
  const idx = keywords.map((k) => map.get(k)).filter((i): i is number => i !== undefined);
  return flagsToLetters(flags, idx, keep);
}

/**
 * Writes a body into tmp/, counting its size and its size with CRLF line ends. Small bodies
 * are gathered and written in one call; past SMALL_WRITE_BYTES the rest is streamed, so a
 * huge message never sits in memory whole.
 */
async function writeTmp(path: string, body: Readable, fsync: boolean, owner: Owner | undefined): Promise<{ size: number; vsize: number }> {
  const fd = openSync(path, 'wx', 0o600);
  chownFd(fd, owner);
  let size = 0;
  let bareLf = 0;
  let prev = -1;
  let held: Buffer[] = [];
  let heldBytes = 0;
  const flush = async () => {
    if (held.length === 0) return;
    const buf = held.length === 1 ? held[0]! : Buffer.concat(held);
    held = [];
    heldBytes = 0;
    let off = 0;
    while (off < buf.length) off += await new Promise<number>((resolve, reject) => write(fd, buf, off, buf.length - off, null, (e, n) => (e ? reject(e) : resolve(n))));
  };
  try {
    for await (const chunk of body) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) {
        const before = i > 0 ? buf[i - 1] : prev;
        if (before !== 13) bareLf++;
      }
      if (buf.length > 0) prev = buf[buf.length - 1]!;
      size += buf.length;
      held.push(buf);
      heldBytes += buf.length;
      if (heldBytes >= SMALL_WRITE_BYTES) await flush();
    }
    if (heldBytes < SMALL_WRITE_BYTES && held.length > 0) {
      const buf = held.length === 1 ? held[0]! : Buffer.concat(held);
      held = [];
      writeWholeSync(fd, buf);
    } else await flush();
    if (fsync) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
    throw err;
  }
  closeSync(fd);
  return { size, vsize: size + bareLf };
}

/**
 * A copy of a message of the same mailbox as a hard link: no body is read or written, and the
 * data is already durable. Undefined when the source file is gone or its sizes are not in its
 * name (the caller then copies the bytes).
 */
function linkTmp(ctx: ScanContext, mailbox: IndexedMailbox, uid: number, tmpPath: string): { size: number; vsize: number } | undefined {
  const row = ctx.index.message(mailbox.id, uid);
  if (!row) return undefined;
  const parsed = parseMaildirFilename(row.file.slice(4));
  if (parsed.vsize === undefined) return undefined;
  try {
    linkSync(join(ctx.dir, row.file), tmpPath);
  } catch {
    return undefined; // renamed by a flag change elsewhere, or a file system without links
  }
  return { size: row.size, vsize: parsed.vsize };
}

interface PendingSave {
  /** The written file in tmp/, renamed to `file` when its batch commits. */
  tmp: string;
  wantedUid: number | undefined;
  basename: string;
  guid: string;
  file: string;
  flagLetters: string;
  keywords: string[];
  receivedDate: number;
  size: number;
}

export async function saveMessages(
  ctx: ScanContext,
  mailbox: IndexedMailbox,
  requests: Iterable<SaveRequest> | AsyncIterable<SaveRequest>,
): Promise<SavedMessage[]> {
  // Base names this call gave; those of the mailbox's other files are the uidlist's (below).
  const taken = new Set<string>();
  const results: SavedMessage[] = [];
  let pending: PendingSave[] = [];
  let pendingBytes = 0;
  const commit = async () => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    pendingBytes = 0;
    try {
      // Written down before any file shows up in cur/: a crash between the renames and the
      // uidlist leaves files the next scan adopts, and this is how it learns their UIDs and GUIDs.
      ctx.index.notePendingSaves(mailbox.id, batch.map((p) => ({ basename: p.basename, uid: p.wantedUid, guid: p.guid })));
      // Renamed into cur/ only under the uidlist lock, as Dovecot does: a reader that sees the
      // files then waits for the lock and finds them listed, never numbers them itself.
      const publish = () => {
        for (const p of batch) {
          failpoint('save-before-rename');
          renameSync(p.tmp, join(ctx.dir, p.file));
          liveTmp.delete(p.tmp);
          failpoint('save-after-rename');
        }
        if (ctx.fsync) fsyncDir(join(ctx.dir, 'cur'));
      };
      results.push(...(await commitSaves(ctx, mailbox, batch, publish)));
    } catch (err) {
      // Reported as not saved, so they must not stay behind for the next scan to adopt:
      // the caller's retry would then save them twice.
      for (const p of batch) {
        for (const path of [p.tmp, join(ctx.dir, p.file)]) {
          try {
            unlinkSync(path);
          } catch {
            // already gone, or never renamed
          }
        }
      }
      throw fsError(err, `saving into ${ctx.dir}`);
    }
  };
  // A GUID becomes a file's name only when no line of the uidlist names it: the line of a file
  // of this mailbox (the scan that opened it listed every file there), or one an expunge left
  // behind, whose name used again would make Dovecot (and our scan) warn of a duplicate and drop
  // the older UID at every read. Read once, and only when a GUID could become a name: loading
  // the index's rows and parsing every file name for this cost a 10-change sync of the 100k
  // account more than its saves.
  let listed: ((name: string) => boolean) | undefined;
  const listedName = (name: string) => (listed ??= uidlistNames(ctx.dir))(name);
  const kwMap = new Map<string, number>();
  const owner = ownerFor(ctx.dir);
  // Files in tmp/ not yet renamed into cur/: an interrupted run removes them on its way out.
  const liveTmp = new Set<string>();
  const unregister = registerCleanup(() => liveTmp.forEach((path) => rmSync(path, { force: true })));
  try {
    let n = 0;
    for await (const req of requests) {
      await add(req);
      // A source that answers from memory never yields: let a signal's handler run now and then.
      if (++n % 32 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await commit();
  } catch (err) {
    for (const p of pending) rmSync(p.tmp, { force: true });
    throw err;
  } finally {
    unregister();
  }
  return results;

  async function add(req: SaveRequest): Promise<void> {
    if (req.keywords.some((k) => !kwMap.has(k))) {
      for (const [k, i] of await keywordIndexes(ctx, req.keywords)) kwMap.set(k, i);
    }
    const letters = letterFor(req.flags, req.keywords, kwMap);
    const guidUsable = req.guid !== undefined && isValidBasename(req.guid) && !taken.has(req.guid) && !listedName(req.guid);
    const tmpName = newBasename();
    const tmpPath = join(ctx.dir, 'tmp', tmpName + OWN_TMP_SUFFIX);
    liveTmp.add(tmpPath);
    let sizes;
    try {
      sizes = (req.copyOf !== undefined && linkTmp(ctx, mailbox, req.copyOf, tmpPath)) || (await writeTmp(tmpPath, await req.body(), ctx.fsync, owner));
    } catch (err) {
      throw fsError(err, `saving into ${ctx.dir}`);
    }
    // A GUID we were handed becomes the basename as-is (Dovecot reads the GUID back from it);
    // a basename we made ourselves carries the sizes, so Dovecot need not stat the file.
    const basename = guidUsable ? req.guid! : withSizes(tmpName, sizes.size, sizes.vsize);
    taken.add(basename);
    const file = `cur/${formatMaildirFilename(basename, letters)}`;
    const received = req.receivedDate / 1000;
    utimesSync(tmpPath, received, received);
    pending.push({
      tmp: tmpPath,
      wantedUid: req.uid,
      basename,
      // A GUID the uidlist cannot carry (spaces, line breaks) is not usable: the store's own replaces it.
      guid: req.guid !== undefined && req.guid !== '' && !/[ \r\n]/.test(req.guid) ? req.guid : basename,
      file,
      flagLetters: systemLetters(letters),
      keywords: keywordList([...new Set(req.keywords)]),
      receivedDate: req.receivedDate,
      size: sizes.size,
    });
    pendingBytes += sizes.size;
    if (pending.length >= BATCH_MESSAGES || pendingBytes >= BATCH_BYTES) await commit();
  }
}

/** What we know of a uidlist's end after writing it, so the next append need not re-read it. */
const uidlistTails = new Map<string, { ino: bigint; size: bigint; mtimeNs: bigint; nextUid: number; lastUid: number }>();

function rememberTail(path: string, nextUid: number, lastUid: number): void {
  const st = statSync(path, { bigint: true });
  uidlistTails.set(path, { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, nextUid, lastUid });
}

/**
 * Gives the batch its UIDs and records them in dovecot-uidlist. New entries are appended, as
 * Dovecot appends them, so saving into a large mailbox does not rewrite its whole uidlist each
 * batch; the file is rewritten only when its end cannot be trusted (no final newline).
 */
async function commitSaves(ctx: ScanContext, mailbox: IndexedMailbox, batch: PendingSave[], publish: () => void): Promise<SavedMessage[]> {
  const path = join(ctx.dir, UIDLIST_FILENAME);
  const lock = await Dotlock.acquire(path, { timeoutSeconds: ctx.lockTimeoutSeconds, fsync: ctx.fsync });
  const uids: number[] = [];
  let next = 0;
  try {
    publish();
    const st = statSync(path, { bigint: true });
    let tail = uidlistTails.get(path);
    let rewrite: Uidlist | undefined;
    if (!tail || tail.ino !== st.ino || tail.size !== st.size || tail.mtimeNs !== st.mtimeNs) {
      const text = readFileSafe(path).toString('utf8');
      const { uidlist } = parseUidlist(text, path);
      tail = { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, nextUid: nextUidOf(uidlist), lastUid: uidlist.entries.at(-1)?.uid ?? 0 };
      if (!text.endsWith('\n')) rewrite = uidlist;
    }
    next = tail.nextUid;
    const entries: UidlistEntry[] = [];
    for (const p of batch) {
      const uid = p.wantedUid !== undefined && p.wantedUid >= next ? p.wantedUid : next;
      next = uid + 1;
      uids.push(uid);
      entries.push(p.guid === p.basename ? { uid, basename: p.basename, extra: [] } : { uid, basename: p.basename, guid: p.guid, extra: [] });
    }
    failpoint('save-before-uidlist');
    if (rewrite) {
      lock.replace(formatUidlist({ ...rewrite, nextUid: next, entries: [...rewrite.entries, ...entries] }));
    } else {
      const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
      try {
        writeWholeSync(fd, formatUidlistEntries(entries, tail.lastUid));
        if (ctx.fsync) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    rememberTail(path, next, uids.at(-1) ?? tail.lastUid);
  } catch (err) {
    uidlistTails.delete(path);
    throw err;
  } finally {
    lock.release();
  }
  failpoint('save-before-index');
  const changes: MessageChange[] = batch.map((p, i) => ({
    kind: 'add',
    message: indexRow(uids[i]!, p.guid, p.file, p.flagLetters, p.keywords, p.receivedDate, p.size),
  }));
  const modseqs = ctx.index.applyChanges(mailbox.id, changes);
  ctx.index.clearPendingSaves(mailbox.id, batch.map((p) => p.basename));
  ctx.index.setUidNext(mailbox.id, next);
  failpoint('save-after-index');
  return batch.map((p, i) => ({ uid: uids[i]!, guid: p.guid, modseq: modseqs[i]! }));
}

export async function updateFlags(ctx: ScanContext, mailbox: IndexedMailbox, updates: readonly FlagUpdate[]): Promise<void> {
  const kwMap = await keywordIndexes(ctx, updates.flatMap((u) => u.keywords));
  const changes: MessageChange[] = [];
  for (const u of updates) {
    const row = ctx.index.message(mailbox.id, u.uid);
    if (!row) continue;
    const current = parseMaildirFilename(row.file.slice(4));
    const unknown = lettersToFlags(current.flagLetters).unknown;
    const letters = letterFor(u.flags, u.keywords, kwMap, unknown);
    const file = `cur/${formatMaildirFilename(current.basename, letters)}`;
    const keywords = [...new Set(u.keywords)];
    const flagLetters = systemLetters(letters);
    if (file !== row.file) {
      try {
        renameSync(join(ctx.dir, row.file), join(ctx.dir, file));
      } catch (err) {
        // Renamed or removed by someone else since the scan: that change wins; the next scan sees it.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw fsError(err, join(ctx.dir, row.file));
      }
    }
    const same = row.flagLetters === flagLetters && row.keywords.length === keywords.length && keywords.every((k) => row.keywords.includes(k));
    if (!same || file !== row.file) {
      changes.push({ kind: 'update', message: { ...row, file, flagLetters, keywords: keywordList(keywords) }, bumpModseq: !same });
    }
  }
  if (changes.length > 0) ctx.index.applyChanges(mailbox.id, changes);
}

export async function expungeMessages(ctx: ScanContext, mailbox: IndexedMailbox, uids: readonly number[]): Promise<void> {
  const changes: MessageChange[] = [];
  for (const uid of uids) {
    const row = ctx.index.message(mailbox.id, uid);
    if (!row) continue;
    try {
      unlinkSync(join(ctx.dir, row.file));
      failpoint('expunge-after-unlink');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, join(ctx.dir, row.file));
      // Already gone or renamed meanwhile; a renamed file is left for the next scan to find.
      continue;
    }
    changes.push({ kind: 'expunge', uid, guid: row.guid });
  }
  if (changes.length === 0) return;
  // The uidlist keeps the lines of the files just removed, as Dovecot keeps them after an
  // expunge: rewriting a 100k-line uidlist for a few expunges costs more than the expunges.
  // A line without its file reads as expunged to Dovecot and to our scan, and its UID is never
  // handed out again. Only once the stale lines reach Dovecot's threshold is the file compressed.
  const live = Math.max(0, (ctx.index.mailboxByGuid(mailbox.guid)?.messages ?? mailbox.messages) - changes.length);
  const lines = uidlistLineCount(ctx.dir);
  if (lines > 0 && uidlistWantsRewrite(lines, live, 0)) {
    const gone = new Set(changes.map((c) => (c as { uid: number }).uid));
    await withUidlistLock(ctx, (lock, uidlist) => {
      // Listed under the lock: a file Dovecot delivered and listed since our scan keeps its line.
      // A line the index still holds is kept too (its file may be mid-rename): the scan decides.
      const listed = listMessageFiles(ctx.dir).byBasename;
      const entries = uidlist.entries.filter((e) => !gone.has(e.uid) && (listed.has(e.basename) || ctx.index.message(mailbox.id, e.uid) !== undefined));
      lock.replace(formatUidlist({ ...uidlist, nextUid: nextUidOf(uidlist), entries }));
    });
  }
  ctx.index.applyChanges(mailbox.id, changes);
}

/** Rewrites the uidlist header: UIDVALIDITY, a raised UIDNEXT, or a new mailbox GUID. */
export async function updateUidlistHeader(
  ctx: ScanContext,
  update: MailboxUpdate,
): Promise<Uidlist> {
  return withUidlistLock(ctx, (lock, uidlist) => {
    let entries = uidlist.entries;
    if (update.restartUids && entries.length > 0) {
      // Lines whose files are gone (left by an expunge, as Dovecot leaves them) hold no mail:
      // they go with the old UIDs.
      const listed = listMessageFiles(ctx.dir, ctx.warn).byBasename;
      const held = entries.filter((e) => listed.has(e.basename)).length;
      if (held > 0) throw dataError(`cannot restart UIDs of ${ctx.dir}: it still holds ${held} messages`);
      entries = [];
    }
    const next: Uidlist = {
      ...uidlist,
      entries,
      uidValidity: update.uidValidity ?? uidlist.uidValidity,
      nextUid: update.restartUids ? Math.max(1, update.minUidNext ?? 1) : Math.max(nextUidOf(uidlist), update.minUidNext ?? 0),
      mailboxGuid: update.guid ?? uidlist.mailboxGuid,
    };
    lock.replace(formatUidlist(next));
    return next;
  });
}
