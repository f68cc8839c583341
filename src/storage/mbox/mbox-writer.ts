/**
 * Changing an mbox file. Three ways, cheapest first:
 * - metadata rewritten in place, over the old header's metadata lines and their padding, when
 *   the new lines fit (flag changes, the X-IMAPbase last UID before an append);
 * - new messages appended at the end, then fsync: the file is never rewritten for new mail;
 * - otherwise the whole file is written anew beside the old one, fsynced and renamed over it,
 *   so a crash leaves either the old or the new file, never a mix.
 * Each is done under the mbox dotlock.
 */
import { closeSync, fstatSync, fsyncSync, readdirSync, renameSync, unlinkSync, fchmodSync, fchownSync, readSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { dataError, fsError } from '../../model/errors.js';
import { failpoint } from '../../model/failpoint.js';
import { headerBlockOf, headerHash } from '../../model/header-hash.js';
import { chownFd, ownerFor } from '../maildir/ownership.js';
import { openFileSync, createNewFileSync } from '../safe-fs.js';
import { isMissing } from './missing-file.js';
import { rewriteTempName } from './mbox-own-files.js';
import type { SaveRequest, SystemFlag } from '../store.js';
import { FileOutput } from './file-output.js';
import { formatFromLine, parseFromLine } from './from-line.js';
import { contentLengthLines, formatBlock, formatImapBase, type ImapBase } from './mbox-headers.js';
import type { MboxContext } from './mbox-index-sync.js';
import { CUT_MARK, type ScannedMessage } from './mbox-scan.js';
import { formatPseudoMessage } from './pseudo-message.js';
import { findHeaderEnd, HASHED_PREFIX_BYTES, storedHeader, writableGuid } from './stored-message.js';
import { analyzeHeader, type HeaderInfo } from './message-header.js';
import { fsyncDir } from '../fsync-dir.js';
import { processAlive } from '../process-alive.js';

export interface MessageState {
  uid: number;
  flags: readonly SystemFlag[];
  keywords: readonly string[];
}

/** Bodies up to this size are gathered and written with their header in one call. */
const SMALL_BODY_BYTES = 1024 * 1024;
/** A message without an empty line this far in is stored body-only. */
const HEADER_LOOKAHEAD_BYTES = 1024 * 1024;

/** A rewrite reads a message this small in one call. */
const SMALL_COPY_BYTES = 256 * 1024;

/**
 * Scans keep no header text, so writers read back the headers they rewrite. Under the write
 * lock the file is the one scanned; a message whose From line is gone, or whose header no longer
 * carries the scanned UID (and, with `hash`, header hash), means it is not, and nothing is
 * written from a wrong offset. The hash is checked by in-place patches, which touch a few
 * messages; for every message of a rewrite it would cost as much as the scan.
 */
function checkStored(path: string, m: ScannedMessage, fromLine: Buffer, raw: Buffer, info: HeaderInfo, hash: boolean): void {
  let lineEnd = fromLine.indexOf(10);
  if (lineEnd < 0) lineEnd = fromLine.length;
  if (lineEnd > 0 && fromLine[lineEnd - 1] === 13) lineEnd--;
  if (
    fromLine.length !== m.hdr - m.from ||
    raw.length !== m.hdrEnd - m.hdr ||
    parseFromLine(fromLine.subarray(0, lineEnd)) === undefined ||
    info.uid !== m.uid ||
    (hash && !m.bodyOnly && headerHash(info.served) !== m.hash)
  ) {
    throw dataError(`${path}: the message at byte offset ${m.from} is not the one scanned there; the file changed under the lock`);
  }
}

/** A message's header as the file holds it now, analyzed and checked (see checkStored). */
export function readStoredHeader(path: string, fd: number, m: ScannedMessage): { raw: Buffer; info: HeaderInfo } {
  const head = readBytes(fd, m.from, m.hdrEnd);
  const raw = head.subarray(m.hdr - m.from);
  const info = analyzeHeader(raw, false);
  checkStored(path, m, head.subarray(0, m.hdr - m.from), raw, info, true);
  return { raw, info };
}

/**
 * The bytes that replace a message's metadata lines in place, or undefined when they do not
 * fit (or the message is not one whose metadata can be found again by its length). `header`
 * is the message's header as read back from the file.
 */
export function inPlacePatch(m: ScannedMessage, header: HeaderInfo, state: MessageState, imapBase?: ImapBase): { offset: number; data: string } | undefined {
  const headerLength = m.hdrEnd - m.hdr;
  if (!m.lengthProven || header.metaStart >= headerLength) return undefined;
  const kept = header.keptAfterMeta.join('');
  const room = headerLength - header.metaStart - kept.length;
  const block = formatBlock(
    { ...state, contentLength: m.end - m.body, imapBase: imapBase && formatImapBase('X-IMAPbase', imapBase, 0) },
    room,
  );
  return block === undefined ? undefined : { offset: m.hdr + header.metaStart, data: kept + block };
}

/** In-place patches for these messages, their headers read back from the file; undefined when one does not fit. */
export function inPlacePatches(
  path: string,
  wanted: readonly { m: ScannedMessage; state: MessageState; imapBase?: ImapBase }[],
): { offset: number; data: string }[] | undefined {
  if (wanted.length === 0) return [];
  let fd: number;
  try {
    fd = openFileSync(path);
  } catch (err) {
    throw fsError(err, `mbox ${path}`);
  }
  try {
    const patches: { offset: number; data: string }[] = [];
    for (const w of wanted) {
      if (!w.m.lengthProven) return undefined;
      const p = inPlacePatch(w.m, readStoredHeader(path, fd, w.m).info, w.state, w.imapBase);
      if (!p) return undefined;
      patches.push(p);
    }
    return patches;
  } finally {
    closeSync(fd);
  }
}

export async function patchInPlace(ctx: MboxContext, patches: readonly { offset: number; data: string }[]): Promise<void> {
  if (patches.length === 0) return;
  let fd: number;
  try {
    fd = openFileSync(ctx.path, 'r+');
  } catch (err) {
    throw fsError(err, `mbox ${ctx.path}`);
  }
  try {
    const out = new FileOutput(fd, 0);
    for (const p of patches) await out.patch(p.offset, p.data);
    failpoint('mbox-patch-before-fsync');
    if (ctx.fsync) fsyncSync(fd);
  } catch (err) {
    throw fsError(err, `writing ${ctx.path}`);
  } finally {
    closeSync(fd);
  }
}

/** Copies one message of the old file, with new metadata; its header is read back from `src`. */
async function writeKept(out: FileOutput, path: string, src: number, m: ScannedMessage, state: MessageState, imapBase?: string): Promise<void> {
  const whole = m.end - m.from <= SMALL_COPY_BYTES ? readBytes(src, m.from, m.end) : undefined;
  if (whole && whole.length !== m.end - m.from) {
    throw dataError(`${path}: the message at byte offset ${m.from} is not the one scanned there; the file changed under the lock`);
  }
  const fromLine = whole ? whole.subarray(0, m.hdr - m.from) : readBytes(src, m.from, m.hdr);
  const raw = whole ? whole.subarray(m.hdr - m.from, m.hdrEnd - m.from) : readBytes(src, m.hdr, m.hdrEnd);
  const info = analyzeHeader(raw, false);
  checkStored(path, m, fromLine, raw, info, false);
  await out.write(fromLine);
  if (m.body === m.hdrEnd) {
    // No empty line after the header (another program wrote it): kept whole as a body-only message.
    const served = info.served;
    await out.write(storedHeader(undefined, {}));
    await out.write(formatBlock({ ...state, contentLength: served.length, imapBase })!);
    await out.write('\n');
    await out.write(served);
  } else {
    await out.write(raw.subarray(0, info.metaStart));
    for (const line of info.keptAfterMeta) await out.write(line);
    const bodyLength = m.end - m.body;
    await out.write(formatBlock({ ...state, contentLength: bodyLength, imapBase })!);
    if (whole) await out.write(whole.subarray(m.hdrEnd - m.from));
    else {
      await out.copyRange(src, m.hdrEnd, m.end);
    }
  }
  await out.write(out.lastByte === 10 ? '\n' : '\n\n');
}

function readBytes(fd: number, start: number, end: number): Buffer {
  const buf = Buffer.alloc(end - start);
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, start + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/** A message to append: its UID is decided before anything is written. */
export interface PlannedSave {
  request: SaveRequest;
  uid: number;
}

export interface WrittenSave {
  uid: number;
  guid: string;
}

async function* chunksOf(stream: Readable): AsyncGenerator<Buffer> {
  for await (const c of stream) yield typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
}

/** Appends one message at `out`; `imapBase` is set for the first message of the file. */
export async function writeNewMessage(out: FileOutput, save: PlannedSave, imapBase?: ImapBase): Promise<WrittenSave> {
  const { request, uid } = save;
  const chunks = chunksOf(await request.body());
  const gathered: Buffer[] = [];
  let total = 0;
  let done = false;
  let split: ReturnType<typeof findHeaderEnd>;
  for (;;) {
    const n = await chunks.next();
    if (n.done) {
      done = true;
      break;
    }
    gathered.push(n.value);
    total += n.value.length;
    if (n.value.includes(10)) {
      split = findHeaderEnd(gathered.length === 1 ? n.value : Buffer.concat(gathered));
      if (split) break;
    }
    if (total > HEADER_LOOKAHEAD_BYTES) break;
  }
  const all = gathered.length === 1 ? gathered[0]! : Buffer.concat(gathered);
  split ??= findHeaderEnd(all);
  let header: Buffer | undefined;
  let rest: Buffer[];
  let blank: number;
  let hash: string;
  if (split) {
    header = all.subarray(0, split.headerEnd);
    rest = [all.subarray(split.headerEnd)];
    blank = split.blank;
    hash = headerHash(header);
  } else {
    rest = [Buffer.from('\n'), all];
    blank = 1;
    hash = headerHash(headerBlockOf(all.subarray(0, HASHED_PREFIX_BYTES)));
  }
  const guid = request.guid !== undefined && request.guid !== hash && writableGuid(request.guid) ? request.guid : undefined;
  const prefix = Buffer.concat([Buffer.from(formatFromLine('MAILER-DAEMON', request.receivedDate), 'latin1'), storedHeader(header, { guid })]);
  const state = { uid, flags: request.flags, keywords: request.keywords, imapBase: imapBase && formatImapBase('X-IMAPbase', imapBase) };
  let restBytes = rest.reduce((n, b) => n + b.length, 0);
  while (!done && restBytes <= SMALL_BODY_BYTES) {
    const n = await chunks.next();
    if (n.done) done = true;
    else {
      rest.push(n.value);
      restBytes += n.value.length;
    }
  }
  if (done) {
    // Written piece by piece: the output copies them into its buffer.
    await out.write(prefix);
    await out.write(formatBlock({ ...state, contentLength: restBytes - blank })!);
    for (const b of rest) await out.write(b);
    await out.write(restBytes > 0 && out.lastByte === 10 ? '\n' : '\n\n');
    return { uid, guid: guid ?? hash };
  }
  // A large body streams to the file; its length is filled in afterwards.
  const block = formatBlock({ ...state, contentLength: CUT_MARK })!;
  const tailStart = block.lastIndexOf('Content-Length: ');
  const tailLength = block.length - tailStart;
  await out.write(prefix);
  const tailOffset = out.position + tailStart;
  await out.write(block);
  for (const b of rest) await out.write(b);
  rest = [];
  await out.flush();
  failpoint('mbox-append-mid-message');
  for (let n = await chunks.next(); !n.done; n = await chunks.next()) {
    restBytes += n.value.length;
    await out.write(n.value);
  }
  await out.write(out.lastByte === 10 ? '\n' : '\n\n');
  const length = restBytes - blank;
  const shortTail = contentLengthLines(length, request.keywords, 0);
  await out.patch(tailOffset, contentLengthLines(length, request.keywords, tailLength - shortTail.length));
  return { uid, guid: guid ?? hash };
}

/** Opens the mbox for appending, making sure its last line is ended. */
export function openForAppend(ctx: MboxContext): { fd: number; out: FileOutput } {
  try {
    const fd = openFileSync(ctx.path, 'r+');
    const size = fstatSync(fd).size;
    const out = new FileOutput(fd, size);
    if (size > 0) {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      out.lastByte = last[0]!;
    }
    return { fd, out };
  } catch (err) {
    throw fsError(err, `mbox ${ctx.path}`);
  }
}

/**
 * Writes the whole mbox anew: `kept` messages of the old file (in UID order, with their new
 * metadata), then whatever `then` appends; X-IMAPbase goes into the first message, or into a
 * pseudo message when there is none. Temp file in the same directory, fsync, rename, fsync dir.
 */
export async function rewriteMbox(
  ctx: MboxContext,
  kept: readonly { m: ScannedMessage; state: MessageState }[],
  base: ImapBase,
  then?: (out: FileOutput, imapBase: ImapBase | undefined) => Promise<number>,
): Promise<void> {
  const dir = dirname(ctx.path);
  const tmp = join(dir, rewriteTempName(basename(ctx.path), process.pid));
  removeDeadTemps(dir, basename(ctx.path), ctx.warn);
  let src: number | undefined;
  let fd: number | undefined;
  try {
    try {
      src = openFileSync(ctx.path);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    fd = createNewFileSync(tmp, 0o600);
    if (src !== undefined) {
      const st = fstatSync(src);
      fchmodSync(fd, st.mode & 0o7777);
      if (process.getuid?.() === 0) fchownSync(fd, st.uid, st.gid);
    } else chownFd(fd, ownerFor(dir));
    const out = new FileOutput(fd, 0);
    const sorted = [...kept].sort((a, b) => a.state.uid - b.state.uid);
    for (const [i, k] of sorted.entries()) await writeKept(out, ctx.path, src!, k.m, k.state, i === 0 ? formatImapBase('X-IMAPbase', base) : undefined);
    const added = then ? await then(out, sorted.length === 0 ? base : undefined) : 0;
    if (sorted.length === 0 && added === 0) await out.write(formatPseudoMessage(base, Date.now(), hostname()));
    await out.sync(ctx.fsync);
    closeSync(fd);
    fd = undefined;
    failpoint('mbox-rewrite-before-rename');
    renameSync(tmp, ctx.path);
    failpoint('mbox-rewrite-after-rename');
    if (ctx.fsync) fsyncDir(dir);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // renamed already, or never made
    }
    throw fsError(err, `rewriting ${ctx.path}`);
  } finally {
    if (src !== undefined) closeSync(src);
  }
}

/**
 * Temp files of rewrites whose process died. They must not stay: Dovecot lists hidden files
 * of an mbox root as mailboxes too. We hold the mbox lock, so no live rewrite of this file runs.
 */
export function removeDeadTemps(dir: string, name: string, warn: (msg: string) => void): void {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  const prefix = `.${name}.`;
  for (const e of entries) {
    if (!e.startsWith(prefix) || !e.endsWith('.mailferry-tmp')) continue;
    const pid = Number(e.slice(prefix.length, -'.mailferry-tmp'.length));
    if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    try {
      unlinkSync(join(dir, e));
      warn(`${join(dir, e)}: removed the temp file of an interrupted rewrite (the mbox itself was not touched by it)`);
    } catch {
      // gone meanwhile
    }
  }
}
