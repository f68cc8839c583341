/**
 * One mbox mailbox: scanning it into the change index, and changing it. Every change scans the
 * file again under the lock first, or takes this store's last scan of it while the file keeps
 * that scan's fingerprint (so changes other programs made are recorded, with their own
 * modseqs, before ours), then writes, then reads back what it wrote and records it: the whole
 * file after a rewrite, only the parts written after an append or an in-place patch. One scan
 * of a file is alive at a time.
 */
import { ftruncateSync, closeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { dataError, fsError } from '../../model/errors.js';
import { entryKind, openFileSync } from '../safe-fs.js';
import { failpoint } from '../../model/failpoint.js';
import type { IndexedMailbox } from '../index/change-index.js';
import type { FlagUpdate, MailboxUpdate, SaveRequest, SavedMessage, SystemFlag } from '../store.js';
import { fileFingerprint, indexedMailboxByName, syncIndex, type MboxContext, type NumberedMessage } from './mbox-index-sync.js';
import { withMboxLock } from './mbox-lock.js';
import { flagsFromStatus, type ImapBase } from './mbox-headers.js';
import { scanMboxFile, type MboxScan, type ScannedMessage } from './mbox-scan.js';
import { inPlacePatches, openForAppend, removeDeadTemps, patchInPlace, rewriteMbox, writeNewMessage, type MessageState, type PlannedSave, type WrittenSave } from './mbox-writer.js';

interface Synced {
  scan: MboxScan;
  mailbox: IndexedMailbox;
  numbered: NumberedMessage[];
}

/** Scans (unless size and mtime prove nothing changed) and returns the index record. */
export async function refreshMailbox(ctx: MboxContext): Promise<IndexedMailbox> {
  const known = indexedMailboxByName(ctx.index, ctx.name);
  const fp = fileFingerprint(ctx.path);
  if (known && fp.safe && known.scanFingerprint === fp.value) return known;
  // This store recorded this very file in the index itself: a fresh mtime cannot prove that to
  // a later run, but it need not prove it to us (a save is followed by a status read, and
  // comparing every row again would cost as much as the save's own comparison).
  const last = ctx.scans?.get(ctx.path);
  if (known && last?.recordedIn === known.id && last.fp === fp.value) return known;
  // Read by this store between two chunks of its own save (a copy within the mailbox): the index
  // still places every message it holds right, since a save only appends to the file or, after
  // rewriting it, records the new file at once; a scan here would read the file per chunk.
  if (known && ctx.pausedWrites?.has(ctx.path)) return known;
  return withMboxLock(ctx, 'read', () => scanAndSync(ctx, false).mailbox);
}

/**
 * Scans the file, or reuses this store's last scan of it when the fingerprint (inode, size,
 * mtime) is unchanged: under the dotlock no other writer can be at work, and copying into a
 * large mbox would otherwise read it whole before and after every batch.
 */
function scanAndSync(ctx: MboxContext, repair: boolean, known?: MboxScan): Synced {
  if (repair) removeDeadTemps(dirname(ctx.path), basename(ctx.path), ctx.warn);
  let fp = fileFingerprint(ctx.path);
  const cached = ctx.scans?.get(ctx.path);
  const reusable = known ?? (cached && cached.fp === fp.value ? cached.scan : undefined);
  // A stale scan is let go before the file is read again: two scans of a large file would double the peak.
  if (!reusable) ctx.scans?.delete(ctx.path);
  let scan = reusable ?? scanMboxFile(ctx.path, ctx.warn);
  if (scan.truncatedAt !== undefined) {
    const cut = `${ctx.path}: the last message (at byte offset ${scan.truncatedAt}) is incomplete: an append that was cut off`;
    if (!repair) ctx.warn(`${cut}; left out until the next write removes it`);
    else {
      ctx.warn(`${cut}; removing the incomplete tail (${scan.size - scan.truncatedAt} bytes)`);
      truncateTo(ctx.path, scan.truncatedAt);
      fp = fileFingerprint(ctx.path);
      ctx.scans?.delete(ctx.path);
      scan = scanMboxFile(ctx.path, ctx.warn);
    }
  }
  // A left-out tail must be looked at again by the next read.
  const safeFp = scan.truncatedAt === undefined ? fp : { value: fp.value, safe: false };
  const { mailbox, numbered } = syncIndex(ctx, scan, safeFp);
  ctx.scans?.set(ctx.path, { fp: fp.value, scan, recordedIn: scan.truncatedAt === undefined ? mailbox.id : undefined });
  return { scan, mailbox, numbered };
}

/**
 * Brings `s` up to date after an append at `appendStart` of messages with `uids` and an in-place patch of
 * the first message, reading only those parts again. The scan is extended in place: one scan
 * of the file is alive, however many appends a save makes. The index is not touched; the
 * caller records the whole save in it once.
 */
function extendAfterAppend(ctx: MboxContext, s: Synced, appendStart: number, uids: readonly number[]): void {
  const head = s.scan.messages[0]!;
  const first = scanMboxFile(ctx.path, ctx.warn, { start: head.from, end: head.next, first: true });
  const appended = scanMboxFile(ctx.path, ctx.warn, { start: appendStart, first: false });
  if (first.messages.length !== 1 || appended.truncatedAt !== undefined || appended.messages.map((m) => m.uid).join() !== uids.join()) {
    throw dataError(`${ctx.path}: the messages appended at byte offset ${appendStart} do not read back as written`);
  }
  s.scan.messages[0] = first.messages[0]!;
  s.numbered[0] = { ...s.numbered[0]!, message: first.messages[0]! };
  s.scan.base = first.base;
  s.scan.size = appended.size;
  for (const m of appended.messages) {
    s.scan.messages.push(m);
    s.numbered.push({ message: m, uid: m.uid!, virtualUid: false });
  }
}

/** The scan after patching some messages' headers in place (same lengths, so every offset holds). */
function scanAfterPatches(ctx: MboxContext, before: MboxScan, patched: ReadonlySet<number>): MboxScan {
  const messages = before.messages.map((m, i) =>
    patched.has(i) ? scanMboxFile(ctx.path, ctx.warn, { start: m.from, end: m.next, first: i === 0 && !before.pseudo }).messages[0]! : m,
  );
  return { ...before, size: before.size, base: patched.has(0) && !before.pseudo ? (scanMboxFile(ctx.path, ctx.warn, { start: messages[0]!.from, end: messages[0]!.next, first: true }).base ?? before.base) : before.base, messages };
}

/**
 * Lets go of the scan of a file that was just rewritten, before the new file is read: two scans
 * of a large file alive at once would double the peak. `s` is empty afterwards.
 */
function letGo(ctx: MboxContext, s: Synced): void {
  ctx.scans?.delete(ctx.path);
  s.scan.messages = [];
  s.numbered = [];
}

function truncateTo(path: string, size: number): void {
  try {
    const fd = openFileSync(path, 'r+');
    try {
      ftruncateSync(fd, size);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw fsError(err, `truncating ${path}`);
  }
}

function stateOf(n: NumberedMessage): MessageState {
  return { uid: n.uid, flags: flagsFromStatus(n.message.status, n.message.xStatus), keywords: n.message.keywords };
}

function union(...lists: (readonly string[])[]): string[] {
  const out = new Set<string>();
  for (const list of lists) for (const x of list) out.add(x);
  return [...out];
}

/** The X-IMAPbase the file should carry. */
function baseFor(s: Synced, states: readonly MessageState[], extra: { lastUid?: number; keywords?: readonly string[]; uidValidity?: number } = {}): ImapBase {
  let lastUid = Math.max(s.mailbox.uidNext - 1, s.scan.base?.lastUid ?? 0, extra.lastUid ?? 0);
  const keywords = new Set([...(s.scan.base?.keywords ?? []), ...(extra.keywords ?? [])]);
  for (const st of states) {
    lastUid = Math.max(lastUid, st.uid);
    for (const k of st.keywords) keywords.add(k);
  }
  return { uidValidity: extra.uidValidity ?? s.mailbox.uidValidity, lastUid, keywords: [...keywords] };
}

/** The file is in the shape appends and in-place changes need: X-IMAPbase first, every UID written. */
function canPatch(s: Synced): boolean {
  return (
    s.scan.messages.length > 0 &&
    !s.scan.pseudo &&
    s.scan.base !== undefined &&
    s.scan.base.uidValidity === s.mailbox.uidValidity &&
    s.numbered.every((n) => !n.virtualUid)
  );
}

/**
 * Requests are taken this many at a time: a caller may have opened each body already (the sync
 * engine does, to skip messages expunged meanwhile), and a mailbox of them must not sit in
 * memory at once. As many as a Maildir save commits per batch.
 */
export const SAVE_CHUNK = 200;

async function* chunked<T>(items: Iterable<T> | AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  const chunk: T[] = [];
  for await (const item of items) {
    chunk.push(item);
    // Handed over emptied, so that the generator holds nothing while the chunk is written.
    if (chunk.length >= size) yield chunk.splice(0);
  }
  if (chunk.length > 0) yield chunk.splice(0);
}

/**
 * Writes `planned` at the end of the file, taking each out of the list as it is written: the
 * caller may hold its body in memory until the request is let go. Returns where the first starts.
 */
async function appendMessages(ctx: MboxContext, planned: PlannedSave[], written: WrittenSave[]): Promise<number> {
  const { fd, out } = openForAppend(ctx);
  try {
    if (out.lastByte !== -1 && out.lastByte !== 10) await out.write('\n');
    const appendStart = out.position;
    for (let p = planned.shift(); p; p = planned.shift()) {
      written.push(await writeNewMessage(out, p));
      failpoint('mbox-append-after-message');
    }
    failpoint('mbox-append-before-fsync');
    await out.sync(ctx.fsync);
    return appendStart;
  } catch (err) {
    throw fsError(err, `appending to ${ctx.path}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Saves the requests as they come, SAVE_CHUNK at a time, under one lock. Each chunk is appended
 * after raising the X-IMAPbase last UID in place (a crash in between only wastes UIDs), or, when
 * the file is not in shape for that (a new mailbox's pseudo message, UIDs not yet in the file),
 * written with a rewrite of the file, after which the next chunks can append. The scan is carried
 * across chunks and extended with what each one appended; the index records the save once, at
 * the end, since comparing it with the file costs a pass over every message.
 */
export async function saveToMailbox(ctx: MboxContext, requests: Iterable<SaveRequest> | AsyncIterable<SaveRequest>): Promise<SavedMessage[]> {
  const chunks = chunked(requests, SAVE_CHUNK);
  const take = async (): Promise<SaveRequest[] | undefined> => {
    const n = await chunks.next();
    return n.done ? undefined : n.value;
  };
  let chunk = await take();
  if (!chunk) return [];
  return withMboxLock(ctx, 'write', async () => {
    let s = scanAndSync(ctx, true);
    let indexed = true;
    let patchable = canPatch(s);
    let next = s.mailbox.uidNext;
    let base = baseFor(s, s.numbered.map(stateOf));
    const written: WrittenSave[] = [];
    // The next requests are taken with the lock held; reads of this file by this store meanwhile
    // go without it (see MboxContext.pausedWrites).
    const takeHolding = async (): Promise<SaveRequest[] | undefined> => {
      ctx.pausedWrites?.add(ctx.path);
      try {
        return await take();
      } finally {
        ctx.pausedWrites?.delete(ctx.path);
      }
    };
    for (; chunk; chunk = await takeHolding()) {
      const planned: PlannedSave[] = chunk.map((request) => {
        const uid = request.uid !== undefined && request.uid >= next ? request.uid : next;
        next = uid + 1;
        return { request, uid };
      });
      base = { ...base, lastUid: Math.max(base.lastUid, next - 1), keywords: union(base.keywords, ...chunk.map((r) => r.keywords)) };
      const uids = planned.map((p) => p.uid);
      chunk = [];
      const first = s.numbered[0];
      const patch = patchable && first ? inPlacePatches(ctx.path, [{ m: first.message, state: stateOf(first), imapBase: base }])?.[0] : undefined;
      if (patch) {
        // The last UID is raised before the mail goes in: a crash in between only wastes UIDs.
        await patchInPlace(ctx, [patch]);
        extendAfterAppend(ctx, s, await appendMessages(ctx, planned, written), uids);
        indexed = false;
        continue;
      }
      const kept = s.numbered.map((n) => ({ m: n.message, state: stateOf(n) }));
      base = baseFor(s, kept.map((k) => k.state), { lastUid: base.lastUid, keywords: base.keywords });
      const writtenBefore = written.length;
      await rewriteMbox(ctx, kept, base, async (out, firstBase) => {
        for (let p = planned.shift(); p; p = planned.shift()) written.push(await writeNewMessage(out, p, written.length === writtenBefore ? firstBase : undefined));
        return uids.length;
      });
      // The rewritten file is read whole (and recorded): the chunks after it append to it.
      kept.length = 0;
      letGo(ctx, s);
      s = scanAndSync(ctx, false);
      indexed = true;
      patchable = canPatch(s);
    }
    failpoint('mbox-save-before-index');
    const after = indexed ? s : scanAndSync(ctx, false, s.scan);
    const inFile = new Set(after.numbered.map((n) => n.uid));
    // Index rows and writes are both in UID order: one walk pairs them, without a query per message.
    const rows = ctx.index.messages(after.mailbox.id);
    let r = 0;
    return written.map((w) => {
      while (r < rows.length && rows[r]!.uid < w.uid) r++;
      const row = rows[r];
      if (!row || row.uid !== w.uid || !inFile.has(w.uid)) throw dataError(`${ctx.path}: message with UID ${w.uid} is not there after saving it`);
      return { uid: w.uid, guid: row.guid, modseq: row.modseq };
    });
  });
}

function sameFlags(a: MessageState, b: { flags: readonly SystemFlag[]; keywords: readonly string[] }): boolean {
  const fa = [...a.flags].sort().join(' ');
  const fb = [...b.flags].sort().join(' ');
  return fa === fb && [...a.keywords].sort().join(' ') === [...new Set(b.keywords)].sort().join(' ');
}

export async function updateMailboxFlags(ctx: MboxContext, updates: readonly FlagUpdate[]): Promise<void> {
  if (updates.length === 0) return;
  await withMboxLock(ctx, 'write', async () => {
    const s = scanAndSync(ctx, true);
    const wanted = new Map(updates.map((u) => [u.uid, u]));
    const states = s.numbered.map((n) => {
      const u = wanted.get(n.uid);
      return u ? { uid: n.uid, flags: u.flags, keywords: [...new Set(u.keywords)] } : stateOf(n);
    });
    const changed = new Set(s.numbered.filter((n, i) => !sameFlags(stateOf(n), states[i]!)));
    if (changed.size === 0) return;
    const base = baseFor(s, states);
    const baseGrows = base.keywords.length !== (s.scan.base?.keywords.length ?? -1);
    const targets: { m: ScannedMessage; state: MessageState; imapBase?: ImapBase }[] = [];
    const patched = new Set<number>();
    for (const [i, n] of s.numbered.entries()) {
      if (!changed.has(n) && !(i === 0 && baseGrows)) continue;
      targets.push({ m: n.message, state: states[i]!, imapBase: i === 0 ? base : undefined });
      patched.add(i);
    }
    const patches = canPatch(s) ? inPlacePatches(ctx.path, targets) : undefined;
    if (patches) {
      await patchInPlace(ctx, patches);
      scanAndSync(ctx, false, scanAfterPatches(ctx, s.scan, patched));
    } else {
      await rewriteMbox(ctx, s.numbered.map((n, i) => ({ m: n.message, state: states[i]! })), base);
      changed.clear();
      letGo(ctx, s);
      scanAndSync(ctx, false);
    }
  });
}

export async function expungeFromMailbox(ctx: MboxContext, uids: readonly number[]): Promise<void> {
  if (uids.length === 0) return;
  await withMboxLock(ctx, 'write', async () => {
    const s = scanAndSync(ctx, true);
    const gone = new Set(uids);
    if (!s.numbered.some((n) => gone.has(n.uid))) return;
    const kept = s.numbered.filter((n) => !gone.has(n.uid));
    const states = s.numbered.map(stateOf);
    await rewriteMbox(ctx, kept.map((n) => ({ m: n.message, state: stateOf(n) })), baseFor(s, states));
    kept.length = 0;
    letGo(ctx, s);
    scanAndSync(ctx, false);
  });
}

/** New UIDVALIDITY and/or a higher UIDNEXT, written into the file's X-IMAPbase (or pseudo message). */
export async function updateMailboxHeader(ctx: MboxContext, update: MailboxUpdate): Promise<IndexedMailbox> {
  return withMboxLock(ctx, 'write', async () => {
    const s = scanAndSync(ctx, true);
    const restart = update.restartUids === true && s.numbered.length === 0;
    const uidValidity = update.uidValidity ?? s.mailbox.uidValidity;
    const states = s.numbered.map(stateOf);
    const base = baseFor(s, states, { uidValidity, lastUid: (update.minUidNext ?? 1) - 1 });
    if (restart) base.lastUid = Math.max(0, (update.minUidNext ?? 1) - 1);
    if (uidValidity !== s.mailbox.uidValidity) ctx.index.resetMailbox(s.mailbox.id, uidValidity);
    await rewriteMbox(ctx, s.numbered.map((n, i) => ({ m: n.message, state: states[i]! })), base);
    letGo(ctx, s);
    ctx.index.setUidNext(s.mailbox.id, base.lastUid + 1);
    if (restart) ctx.index.setUidNext(s.mailbox.id, base.lastUid + 1);
    return scanAndSync(ctx, false).mailbox;
  });
}

/** Writes the pseudo message that makes an empty mailbox keep its UIDVALIDITY. */
export async function createMailboxFile(ctx: MboxContext, uidValidity: number): Promise<void> {
  if (entryKind(ctx.path) !== 'missing') throw dataError(`${ctx.path} already exists`);
  await withMboxLock(ctx, 'write', () => rewriteMbox(ctx, [], { uidValidity, lastUid: 0, keywords: [] }));
}
