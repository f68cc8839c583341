/**
 * Reading an mbox file into message boundaries and metadata, streaming: one header at a time
 * is held in memory, bodies are skipped (by Content-Length when it proves itself) or walked
 * line by line. What a scan keeps per message is offsets and a few short fields, never header
 * text: a scan of a mailbox of any size must fit in memory, and writers read back the headers
 * they rewrite (mbox-writer.ts).
 *
 * Where a message ends, as Dovecot decides it (istream-raw-mbox.c): at `offset of the body +
 * Content-Length` when that lands on the end of file or on a separator line (a `From ` line
 * with a valid date, after the blank line); otherwise at the next separator line. The line end
 * before a separator belongs to the separator.
 *
 * Quoting: writers that do not use Content-Length (Postfix local, procmail, mutt, Thunderbird,
 * Python's mailbox) quote body lines starting with `From ` as `>From `, some (mboxrd) also add
 * a `>` to lines that already start with `>+From `, others (mboxo) do not. Which one wrote a
 * file cannot be told from the file, and Dovecot undoes neither: every body is served as
 * stored. mailferry does the same, so both read the same messages from one file.
 */
import { closeSync, fstatSync } from 'node:fs';
import { dataError } from '../../model/errors.js';
import { isMissing } from './missing-file.js';
import { openFileSync } from '../safe-fs.js';
import { headerBlockOf, headerHash } from '../../model/header-hash.js';
import { ByteReader, type Line } from './byte-reader.js';
import { parseFromLine, startsWithFrom } from './from-line.js';
import type { ImapBase } from './mbox-headers.js';
import { analyzeHeader } from './message-header.js';
import { BODY_ONLY, HASHED_PREFIX_BYTES } from './stored-message.js';

/**
 * The Content-Length mailferry writes while a large body is still streaming in (replaced when
 * it is complete): found on the last message, it marks an append that was cut off.
 */
export const CUT_MARK = 9_999_999_999_999_999;

/** A header longer than this is not a header. */
const MAX_HEADER_BYTES = 4 * 1024 * 1024;
/** Longer lines are never separators; only this much of a body line is looked at. */
const LINE_PEEK = 1024;

export interface ScannedMessage {
  /** Offset of the From line. */
  from: number;
  /** Offset of the header (just past the From line). */
  hdr: number;
  /** Offset of the empty line ending the header (or where the header stops). */
  hdrEnd: number;
  /** Offset just past the empty line. */
  body: number;
  /** Offset just past the message's last byte. */
  end: number;
  /** Offset of the next From line, or the file size. */
  next: number;
  receivedDate: number;
  /** X-UID, when present and well-formed. */
  uid?: number;
  status: string;
  xStatus: string;
  keywords: readonly string[];
  /** X-Mailferry-GUID, when present. */
  guid?: string;
  servedHeaderLength: number;
  hash: string;
  /** The size served: header without metadata lines plus body. */
  size: number;
  /** Content-Length was present and proved right. */
  lengthProven: boolean;
  /** Stored body-only: the served message is the body (see stored-message.ts). */
  bodyOnly: boolean;
}

export interface MboxScan {
  size: number;
  messages: ScannedMessage[];
  /** X-IMAP of a pseudo message, or X-IMAPbase of the first message. */
  base?: ImapBase;
  /** The pseudo message, when the file starts with one. */
  pseudo?: { from: number; next: number };
  /** Offset where an incomplete last message starts (an append of mailferry's that was cut off). */
  truncatedAt?: number;
}

/**
 * A copy of `s` that holds no reference to the string it was cut from. V8 keeps substrings as
 * views into their parent: a GUID cut from a header's text would keep the whole header alive
 * for as long as the scan lives.
 */
function detached(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

/** One copy of each Status, X-Status and keyword set a scan meets: most messages share a few. */
class SharedValues {
  private readonly strings = new Map<string, string>();
  private readonly keywordSets = new Map<string, readonly string[]>();

  string(s: string): string {
    let kept = this.strings.get(s);
    if (kept === undefined) {
      kept = detached(s);
      this.strings.set(kept, kept);
    }
    return kept;
  }

  keywords(list: readonly string[]): readonly string[] {
    const key = list.join(' ');
    let kept = this.keywordSets.get(key);
    if (kept === undefined) {
      kept = Object.freeze(list.map(detached));
      this.keywordSets.set(detached(key), kept);
    }
    return kept;
  }
}

/** True when at `offset` there is only line ends before the end of file or a separator line. */
function separatorFollows(reader: ByteReader, offset: number): boolean {
  if (offset > reader.size) return false;
  const peek = reader.readAt(offset, LINE_PEEK + 4);
  let i = 0;
  for (let n = 0; n < 2; n++) {
    if (peek[i] === 13 && peek[i + 1] === 10) i += 2;
    else if (peek[i] === 10) i += 1;
    else break;
  }
  if (i >= peek.length) return offset + i >= reader.size;
  if (i === 0 && offset !== reader.size) return false;
  const lf = peek.indexOf(10, i);
  return parseFromLine(peek.subarray(i, lf < 0 ? peek.length : lf)) !== undefined;
}

function isSeparator(line: Line): boolean {
  return startsWithFrom(line.head) && parseFromLine(line.head.subarray(0, line.head.length - line.eol)) !== undefined;
}

/** Part of a file to scan: from a From line at `start` to `end` (default: the end of file). */
export interface ScanRange {
  start: number;
  end?: number;
  /** The range starts with the file's first message (which may be the pseudo message or carry X-IMAPbase). */
  first: boolean;
}

export function scanMboxFile(path: string, warn: (msg: string) => void, range?: ScanRange): MboxScan {
  let fd: number;
  try {
    fd = openFileSync(path);
  } catch (err) {
    if (isMissing(err)) return { size: 0, messages: [] };
    throw err;
  }
  try {
    return scanFd(path, fd, warn, range ?? { start: 0, first: true });
  } finally {
    closeSync(fd);
  }
}

function scanFd(path: string, fd: number, warn: (msg: string) => void, range: ScanRange): MboxScan {
  const fileSize = fstatSync(fd).size;
  const size = Math.min(fileSize, range.end ?? fileSize);
  const reader = new ByteReader(fd, size);
  reader.seek(range.start);
  const scan: MboxScan = { size: fileSize, messages: [] };
  let line = reader.nextLine(LINE_PEEK);
  while (line && line.end - line.start === line.eol) line = reader.nextLine(LINE_PEEK); // leading blank lines
  if (!line) return scan;
  if (!isSeparator(line)) {
    throw dataError(`${path}: not an mbox file: no "From " line with a valid date at byte offset ${line.start}`);
  }
  let first = range.first;
  const shared = new SharedValues();
  while (line) {
    const from = line.start;
    const receivedDate = parseFromLine(line.head.subarray(0, line.head.length - line.eol))!;
    const hdr = line.end;
    // The header, up to the empty line.
    const headerParts: Buffer[] = [];
    let headerBytes = 0;
    let hdrEnd = hdr;
    let body = hdr;
    let nextSeparator: Line | undefined;
    for (;;) {
      const l = reader.nextLine(MAX_HEADER_BYTES);
      if (!l) {
        hdrEnd = body = size;
        break;
      }
      if (l.end - l.start === l.eol && l.eol > 0) {
        hdrEnd = l.start;
        body = l.end;
        break;
      }
      if (isSeparator(l)) {
        nextSeparator = l;
        hdrEnd = body = l.start;
        break;
      }
      headerBytes += l.end - l.start;
      if (headerBytes > MAX_HEADER_BYTES) {
        throw dataError(`${path}: message at byte offset ${from} has a header longer than ${MAX_HEADER_BYTES} bytes`);
      }
      headerParts.push(l.head);
    }
    const headerRaw = Buffer.concat(headerParts);
    const info = analyzeHeader(headerRaw, first);
    let end: number;
    let lengthProven = false;
    let truncated = false;
    if (nextSeparator) {
      end = hdrEnd;
      line = nextSeparator;
    } else if (info.contentLength !== undefined && separatorFollows(reader, body + info.contentLength)) {
      end = body + info.contentLength;
      lengthProven = true;
      reader.seek(end);
      line = reader.nextLine(LINE_PEEK);
      while (line && !isSeparator(line)) line = reader.nextLine(LINE_PEEK);
    } else {
      // The line end before a separator is the separator's: an empty body leaves no empty line.
      let prevEol = body - hdrEnd;
      end = body;
      line = undefined;
      for (;;) {
        const l = reader.nextLine(LINE_PEEK);
        if (!l) {
          end = size - prevEol;
          break;
        }
        if (isSeparator(l)) {
          end = l.start - prevEol;
          line = l;
          break;
        }
        prevEol = l.eol;
      }
      if (end < body) end = hdrEnd;
      if (info.contentLength !== undefined) {
        if (!line && info.contentLength === CUT_MARK) truncated = true;
        else warn(`${path}: message at byte offset ${from} has a Content-Length (${info.contentLength}) that does not match; using its From lines`);
      }
    }
    const next = line ? line.start : size;
    if (first && info.pseudo) {
      scan.pseudo = { from, next };
      scan.base = info.imap;
      first = false;
      continue;
    }
    if (truncated) {
      scan.truncatedAt = from;
      break;
    }
    if (range.first && scan.messages.length === 0 && !scan.pseudo && info.imapBase) scan.base = info.imapBase;
    first = false;
    const bodyOnly = info.shape === BODY_ONLY && lengthProven;
    const servedHeaderLength = bodyOnly ? 0 : info.served.length;
    const bodyLength = bodyOnly ? end - body : end - hdrEnd;
    const hashed = bodyOnly ? headerBlockOf(reader.readAt(body, Math.min(end - body, HASHED_PREFIX_BYTES))) : info.served;
    scan.messages.push({
      from,
      hdr,
      hdrEnd,
      body,
      end,
      next,
      receivedDate,
      uid: info.uid,
      status: shared.string(info.status),
      xStatus: shared.string(info.xStatus),
      keywords: shared.keywords(info.keywords),
      guid: info.guid === undefined ? undefined : detached(info.guid),
      servedHeaderLength,
      hash: headerHash(hashed),
      size: servedHeaderLength + Math.max(0, bodyLength),
      lengthProven,
      bodyOnly,
    });
  }
  return scan;
}
