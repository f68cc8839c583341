/**
 * The headers mbox keeps its metadata in, as Dovecot and UW-IMAP write them
 * (mbox-sync-parse.c, mbox-sync-update.c):
 *   X-IMAPbase: <uidvalidity> <last uid, %010u> [keywords...]   (first message)
 *   X-IMAP: the same, in the pseudo "FOLDER INTERNAL DATA" message
 *   X-UID: <uid>
 *   Status: R = \Seen (O = not \Recent)
 *   X-Status: A = \Answered, F = \Flagged, T = \Draft, D = \Deleted
 *   X-Keywords: <keyword> ...
 *   Content-Length: <body bytes after the empty line>
 * Trailing spaces are padding, left so that a flag change can be written over the old header.
 *
 * mailferry adds two headers of its own, hidden from the served message like Dovecot's:
 * `X-Mailferry-GUID` (a message GUID that is not the header hash, so it survives a crash
 * before the change index is written) and `X-Mailferry-Shape` (how a message without an
 * empty line after its header really ended). Header lines of a saved message that would be
 * mistaken for these or for a separator are kept under the escape prefix `X-Mailferry-Orig-`,
 * so a message comes back byte for byte.
 */
import type { SystemFlag } from '../store.js';

/** Dovecot's metadata headers: hidden from the message served, rewritten by every writer. */
export const DOVECOT_HEADERS: ReadonlySet<string> = new Set(['x-imap', 'x-imapbase', 'x-uid', 'status', 'x-status', 'x-keywords', 'content-length']);
/** mailferry's own hidden headers; kept as they are when a message is rewritten. */
export const OWN_HEADERS: ReadonlySet<string> = new Set(['x-mailferry-guid', 'x-mailferry-shape']);
export const ESCAPE_PREFIX = 'X-Mailferry-Orig-';

/** Padding given to X-Keywords (as Dovecot does) and X-IMAPbase, for in-place rewrites. */
export const KEYWORDS_PADDING = 50;
export const IMAPBASE_PADDING = 100;

/** The lowercased field name of a header line, or undefined for a continuation or a malformed line. */
export function fieldName(line: string): string | undefined {
  if (line === '' || line[0] === ' ' || line[0] === '\t') return undefined;
  const colon = line.indexOf(':');
  if (colon <= 0) return undefined;
  return line.slice(0, colon).trimEnd().toLowerCase();
}

export function fieldValue(line: string): string {
  return line.slice(line.indexOf(':') + 1).replace(/[\r\n]+$/, '').trim();
}

/** True when a header line of a message being saved must be stored under the escape prefix. */
export function needsEscape(line: string): boolean {
  if (line.startsWith('From ') || line.toLowerCase().startsWith('x-mailferry-')) return true;
  const name = fieldName(line);
  return name !== undefined && (DOVECOT_HEADERS.has(name) || OWN_HEADERS.has(name));
}

export function flagsFromStatus(status: string, xStatus: string): SystemFlag[] {
  const flags: SystemFlag[] = [];
  if (xStatus.includes('A')) flags.push('\\Answered');
  if (xStatus.includes('F')) flags.push('\\Flagged');
  if (xStatus.includes('D')) flags.push('\\Deleted');
  if (status.includes('R')) flags.push('\\Seen');
  if (xStatus.includes('T')) flags.push('\\Draft');
  return flags;
}

export function statusValue(flags: readonly SystemFlag[]): string {
  return flags.includes('\\Seen') ? 'RO' : 'O';
}

export function xStatusValue(flags: readonly SystemFlag[]): string {
  let s = '';
  if (flags.includes('\\Answered')) s += 'A';
  if (flags.includes('\\Flagged')) s += 'F';
  if (flags.includes('\\Draft')) s += 'T';
  if (flags.includes('\\Deleted')) s += 'D';
  return s;
}

export function parseKeywords(value: string): string[] {
  return [...new Set(value.split(/\s+/).filter((k) => k !== ''))];
}

export interface ImapBase {
  uidValidity: number;
  lastUid: number;
  keywords: string[];
}

/** `X-IMAPbase`/`X-IMAP` values; undefined when malformed (the header is then ignored, as by Dovecot). */
export function parseImapBase(value: string): ImapBase | undefined {
  const [v, last, ...keywords] = value.split(/\s+/).filter((p) => p !== '');
  if (!v || !last || !/^\d+$/.test(v) || !/^\d+$/.test(last)) return undefined;
  const uidValidity = Number(v);
  const lastUid = Number(last);
  if (uidValidity <= 0 || uidValidity > 0xffffffff || lastUid > 0xffffffff) return undefined;
  return { uidValidity, lastUid, keywords };
}

export function formatImapBase(name: 'X-IMAPbase' | 'X-IMAP', base: ImapBase, padding = IMAPBASE_PADDING): string {
  const kw = base.keywords.length ? ` ${base.keywords.join(' ')}` : '';
  return `${name}: ${base.uidValidity} ${String(base.lastUid).padStart(10, '0')}${kw}${' '.repeat(padding)}\n`;
}

export interface BlockFields {
  uid: number;
  flags: readonly SystemFlag[];
  keywords: readonly string[];
  contentLength: number;
  /** X-IMAPbase line (with its LF) for the first message of the file. */
  imapBase?: string;
}

/**
 * The metadata lines mailferry writes at the end of a message header. With `length`, X-Keywords
 * is padded so the block is exactly that long (undefined when it cannot fit); otherwise it gets
 * the default padding. Content-Length comes right before X-Keywords so that a value of another
 * width can be written later by rewriting just those two lines.
 */
export function formatBlock(f: BlockFields, length?: number): string | undefined {
  const x = xStatusValue(f.flags);
  const head = `${f.imapBase ?? ''}X-UID: ${f.uid}\nStatus: ${statusValue(f.flags)}\n${x ? `X-Status: ${x}\n` : ''}`;
  const tail = contentLengthLines(f.contentLength, f.keywords, 0);
  if (length === undefined) return head + contentLengthLines(f.contentLength, f.keywords, KEYWORDS_PADDING);
  const room = length - head.length - tail.length;
  if (room < 0) return undefined;
  return head + contentLengthLines(f.contentLength, f.keywords, room);
}

/** `Content-Length: N\nX-Keywords: kw...<padding>\n`. */
export function contentLengthLines(contentLength: number, keywords: readonly string[], padding: number): string {
  const kw = keywords.length ? ` ${keywords.join(' ')}` : ' ';
  return `Content-Length: ${contentLength}\nX-Keywords:${kw}${' '.repeat(padding)}\n`;
}
