/**
 * Dovecot's `dovecot-uidlist`: the UID ↔ maildir base name map.
 *
 * Dovecot discards (unlinks and rebuilds) the whole file when any line is bad,
 * which would lose UIDs. We keep every readable line and report the rest as
 * warnings, so the caller can decide whether to trust the result.
 *
 * Notes from Dovecot's maildir-uidlist.c / maildir-mail.c / maildir-save.c:
 * - Entries carry only the base name (the writer cuts at the first ':'), and
 *   Dovecot identifies files by that base, so we strip ':info' when reading v1.
 * - An unterminated last line is never seen by Dovecot's line reader; it is
 *   the tail of an interrupted append, so we skip it too.
 * - G (message GUID) is written only when it differs from the base name:
 *   a GUID given by the saver (e.g. dsync) or a base name that had to be
 *   renamed to avoid a clash. Its value is free-form, not hex.
 * - S/W sizes are written only when the size is not already in the file name
 *   (,S= / ,W=) and the mailbox is used by POP3, so most lines lack them.
 * - The header G (mailbox GUID) is 32 hex digits; Dovecot writes lowercase
 *   and invents one when missing. We omit it when absent rather than invent
 *   one here, which Dovecot reads fine.
 */
import { dataError } from '../../model/errors.js';

export interface UidlistEntry {
  uid: number;
  basename: string;
  guid?: string;
  size?: number;
  vsize?: number;
  /** other per-line keys (P, O, ...), preserved in order */
  extra: [string, string][];
}

export interface Uidlist {
  version: 1 | 3;
  uidValidity: number;
  nextUid: number;
  /** 32 lowercase hex */
  mailboxGuid?: string;
  headerExtra: [string, string][];
  /** sorted by uid */
  entries: UidlistEntry[];
}

export interface ParsedUidlist {
  uidlist: Uidlist;
  warnings: string[];
  /** Each entry's UID by its basename: what the parser needs to find a file listed twice. */
  uids: Map<string, number>;
}

const MAX_UINT32 = 0xffffffff;

/** Dovecot's str_to_uint: digits only, must fit 32 bits. */
function parseUint32(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_UINT32 ? n : undefined;
}

function parseHeader(line: string, file: string): Omit<Uidlist, 'entries'> {
  const bad = (why: string) => dataError(`${file}: corrupted dovecot-uidlist header (${why}): ${JSON.stringify(line)}`);
  if (line === '') throw bad('empty');
  if (!/^[0-9] /.test(line)) throw bad('invalid version number');
  const version = Number(line[0]);
  const rest = line.slice(2);
  let uidValidity: number | undefined;
  let nextUid: number | undefined;
  let mailboxGuid: string | undefined;
  const headerExtra: [string, string][] = [];

  if (version === 1) {
    const m = /^\s*([0-9]+)\s+([0-9]+)(?:\s|$)/.exec(rest);
    if (!m) throw bad('version 1 needs "<uidvalidity> <nextuid>"');
    uidValidity = parseUint32(m[1]!);
    nextUid = parseUint32(m[2]!);
  } else if (version === 3) {
    for (const field of rest.split(' ')) {
      if (field === '') continue;
      const key = field[0]!;
      const value = field.slice(1);
      if (key === 'V') {
        uidValidity = parseUint32(value);
        if (uidValidity === undefined) throw bad(`invalid UIDVALIDITY ${JSON.stringify(value)}`);
      } else if (key === 'N') {
        nextUid = parseUint32(value);
        if (nextUid === undefined) throw bad(`invalid next UID ${JSON.stringify(value)}`);
      } else if (key === 'G') {
        if (!/^[0-9a-fA-F]{32}$/.test(value)) throw bad(`invalid mailbox GUID ${JSON.stringify(value)}`);
        mailboxGuid = value.toLowerCase();
      } else {
        headerExtra.push([key, value]);
      }
    }
  } else {
    throw bad(`unsupported version ${version}`);
  }
  if (!uidValidity || !nextUid) throw bad('UIDVALIDITY and next UID must be present and non-zero');
  const header: Omit<Uidlist, 'entries'> = { version, uidValidity, nextUid, headerExtra };
  if (mailboxGuid !== undefined) header.mailboxGuid = mailboxGuid;
  return header;
}

/** Shared by every entry without extension fields (most of them): frozen, as it is shared. */
const NO_EXTRA = Object.freeze([]) as unknown as [string, string][];

/**
 * The common line, `<uid> :<filename>` with no extension fields, read in place from `text`
 * between `start` and `end` without regular expressions or a copy of the line: a 100k-message
 * uidlist is read on every scan of a changed mailbox. Anything else (or anything wrong) is left
 * to the full parser, which also explains what is wrong.
 */
function parsePlainEntryAt(text: string, start: number, end: number, version: 1 | 3): UidlistEntry | undefined {
  let i = start;
  let uid = 0;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) break;
    uid = uid * 10 + (c - 48);
  }
  if (i === start || i - start > 10 || i >= end || text.charCodeAt(i) !== 32 || uid === 0 || uid >= MAX_UINT32) return undefined;
  i++;
  if (version === 3) {
    if (i >= end || text.charCodeAt(i) !== 58) return undefined; // ':'
    i++;
  }
  // By hand up to the line's end: indexOf would search the rest of the file for a '/' that
  // no line has, once per line.
  let colon = end;
  for (let j = i; j < end; j++) {
    const c = text.charCodeAt(j);
    if (c === 47) return undefined; // '/'
    if (c === 58 && colon === end) colon = j; // ':'
  }
  if (colon === i || text.charCodeAt(i) === 32) return undefined;
  return { uid, basename: text.slice(i, colon), extra: NO_EXTRA };
}

/** Returns the entry, or a reason why the line is unusable. */
export function parseEntry(line: string, version: 1 | 3): UidlistEntry | string {
  return parsePlainEntryAt(line, 0, line.length, version) ?? parseEntryStrict(line, version);
}

/** The full entry grammar. Exported so tests can hold the quick path to it. */
export function parseEntryStrict(line: string, version: 1 | 3): UidlistEntry | string {
  const m = /^([0-9]+) /.exec(line);
  if (!m) return 'expected "<uid> " at start of line';
  const uid = Number(m[1]);
  // 0xffffffff is reserved by Dovecot as "no UID yet".
  if (uid === 0 || uid >= MAX_UINT32) return `UID ${m[1]} out of range`;
  let rest = line.slice(m[0].length).replace(/^ +/, '');
  const entry: UidlistEntry = { uid, basename: '', extra: [] };

  if (version === 3) {
    while (rest !== '' && rest[0] !== ':') {
      const end = rest.indexOf(' ');
      const field = end < 0 ? rest : rest.slice(0, end);
      rest = end < 0 ? '' : rest.slice(end).replace(/^ +/, '');
      const key = field[0]!;
      const value = field.slice(1);
      if (!/^[A-Z]$/.test(key)) return `invalid extension field ${JSON.stringify(field)}`;
      const num = /^[0-9]+$/.test(value) ? Number(value) : undefined;
      const safe = num !== undefined && Number.isSafeInteger(num);
      if (key === 'G' && entry.guid === undefined && value !== '') entry.guid = value;
      else if (key === 'S' && entry.size === undefined && safe) entry.size = num;
      else if (key === 'W' && entry.vsize === undefined && safe) entry.vsize = num;
      // Dovecot treats an empty G as corruption and clears it.
      else if (!(key === 'G' && value === '')) entry.extra.push([key, value]);
    }
    if (rest[0] !== ':') return 'missing ":<filename>"';
    rest = rest.slice(1);
  }
  if (rest === '') return 'empty file name';
  if (rest.includes('/')) return 'file name contains "/"';
  const colon = rest.indexOf(':');
  entry.basename = colon < 0 ? rest : rest.slice(0, colon);
  if (entry.basename === '') return 'empty file name';
  return entry;
}

export function parseUidlist(text: string, file: string): ParsedUidlist {
  if (text === '') throw dataError(`${file}: empty dovecot-uidlist`);
  // A lone header without newline is still a header: nothing else to go on.
  const headerEnd = text.indexOf('\n');
  const headerLine = (headerEnd < 0 ? text : text.slice(0, headerEnd)).replace(/\r$/, '');
  const header = parseHeader(headerLine, file);
  const parsed: ParsedUidlist = { uidlist: { ...header, entries: [] }, warnings: [], uids: new Map() };
  if (headerEnd >= 0) parseLines(parsed, text, headerEnd + 1, 2, file);
  return parsed;
}

/**
 * The lines of `appended`, text added at the end of the uidlist `prior` parsed (whose text ended
 * with a newline), as Dovecot and our saves append: the result is what parseUidlist would make of
 * the whole text, without reading the earlier lines again. Undefined when an appended line names a
 * file an earlier line names (Dovecot keeps the later UID, which drops the earlier entry): only a
 * whole parse can say that right.
 */
export function parseAppendedLines(
  prior: Uidlist, priorUids: ReadonlyMap<string, number>, appended: string, firstLineNo: number, file: string,
): Omit<ParsedUidlist, 'uids'> | undefined {
  const tail: ParsedUidlist = { uidlist: { ...prior, entries: [] }, warnings: [], uids: new Map() };
  const last = prior.entries.at(-1);
  parseLines(tail, appended, 0, firstLineNo, file, last?.uid ?? 0);
  for (const e of tail.uidlist.entries) if (priorUids.has(e.basename)) return undefined;
  return { uidlist: { ...prior, entries: prior.entries.concat(tail.uidlist.entries) }, warnings: tail.warnings };
}

/** Entry lines from `start`, one at a time out of `text`: a split would copy every line first. */
function parseLines(out: ParsedUidlist, text: string, start: number, firstLineNo: number, file: string, lastUid = 0): void {
  const { uidlist, warnings, uids } = out;
  const { entries, version, nextUid } = uidlist;
  const warn = (lineNo: number, msg: string) => warnings.push(`${file}: line ${lineNo}: ${msg}`);
  let lineNo = firstLineNo;
  let prevUid = lastUid;
  for (let pos = start; pos < text.length; lineNo++) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) {
      warn(lineNo, 'no terminating newline (interrupted write), skipped');
      return;
    }
    const end = nl > pos && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    const lineStart = pos;
    pos = nl + 1;
    let parsed: UidlistEntry | string | undefined = parsePlainEntryAt(text, lineStart, end, version);
    if (parsed === undefined) {
      const line = text.slice(lineStart, end);
      parsed = parseEntryStrict(line, version);
      if (typeof parsed === 'string') {
        warn(lineNo, `${parsed}, skipped: ${JSON.stringify(line)}`);
        continue;
      }
    }
    if (parsed.uid <= prevUid) {
      warn(lineNo, `UID ${parsed.uid} not greater than previous UID ${prevUid}, skipped`);
      continue;
    }
    if (version === 1 && parsed.uid >= nextUid) {
      warn(lineNo, `UID ${parsed.uid} not below the header's next UID ${nextUid}`);
    }
    // Same file listed twice: Dovecot keeps the later UID (the file came back after an expunge).
    const dup = uids.get(parsed.basename);
    if (dup !== undefined) {
      warn(lineNo, `${parsed.basename} already listed with UID ${dup}; keeping UID ${parsed.uid}`);
      entries.splice(entries.findIndex((e) => e.uid === dup), 1);
    }
    uids.set(parsed.basename, parsed.uid);
    entries.push(parsed);
    prevUid = parsed.uid;
  }
}

/**
 * Dovecot's rule for a uidlist it is about to add lines to (maildir-uidlist.c,
 * UIDLIST_COMPRESS_PERCENTAGE): the file is written anew, without the lines whose files are
 * gone, once the messages it would name are at most 75% of the lines it would hold; else the new
 * lines are appended.
 */
export function uidlistWantsRewrite(lines: number, held: number, added: number): boolean {
  return Math.floor(((lines + added) * 75) / 100) >= held + added;
}

export function nextUidOf(u: Uidlist): number {
  // Scan all entries rather than trust the sort order of a caller-built list.
  let next = u.nextUid;
  for (const e of u.entries) if (e.uid >= next) next = e.uid + 1;
  return next;
}

function checkField(where: string, key: string, value: string, keyPattern: RegExp): string {
  if (!keyPattern.test(key) || /[ \r\n]/.test(value)) {
    throw dataError(`cannot write dovecot-uidlist: invalid field ${JSON.stringify(key + value)} in ${where}`);
  }
  return ` ${key}${value}`;
}

function checkUint32(what: string, n: number, min: number): number {
  if (!Number.isInteger(n) || n < min || n > MAX_UINT32) {
    throw dataError(`cannot write dovecot-uidlist: ${what} ${n} out of range`);
  }
  return n;
}

/** Serializes as version 3 with Dovecot's exact spacing: `<uid>[ <K><v>]* :<base>`. */
export function formatUidlist(u: Uidlist): string {
  checkUint32('UIDVALIDITY', u.uidValidity, 1);
  // Never write a next UID at or below an existing UID: Dovecot would have to repair it.
  let out = `3 V${u.uidValidity} N${checkUint32('next UID', nextUidOf(u), 1)}`;
  if (u.mailboxGuid !== undefined) {
    if (!/^[0-9a-fA-F]{32}$/.test(u.mailboxGuid)) {
      throw dataError(`cannot write dovecot-uidlist: invalid mailbox GUID ${JSON.stringify(u.mailboxGuid)}`);
    }
    out += ` G${u.mailboxGuid.toLowerCase()}`;
  }
  for (const [k, v] of u.headerExtra) out += checkField('header', k, v, /^[^ \r\n:VNG]$/);
  out += '\n';

  return out + formatUidlistEntries(u.entries, 0);
}

/**
 * Entry lines only, for appending to an existing uidlist as Dovecot does: `after` is the
 * highest UID already in the file, and every entry must be above it.
 */
export function formatUidlistEntries(list: readonly UidlistEntry[], after: number): string {
  let out = '';
  const entries = [...list].sort((a, b) => a.uid - b.uid);
  let prev = after;
  for (const e of entries) {
    checkUint32('UID', e.uid, 1);
    if (e.uid === MAX_UINT32 || e.uid <= prev) {
      throw dataError(`cannot write dovecot-uidlist: duplicate, unordered or reserved UID ${e.uid}`);
    }
    prev = e.uid;
    const where = `UID ${e.uid}`;
    const base = e.basename.split(':')[0]!;
    if (base === '' || /[/\r\n]/.test(base)) {
      throw dataError(`cannot write dovecot-uidlist: invalid file name ${JSON.stringify(e.basename)} for ${where}`);
    }
    let line = `${e.uid}`;
    // Dovecot's saver adds G, then P and O; sizes are added later, after them.
    if (e.guid !== undefined && e.guid !== '') line += checkField(where, 'G', e.guid, /^G$/);
    for (const [k, v] of e.extra) line += checkField(where, k, v, /^[A-Z]$/);
    if (e.size !== undefined) line += checkField(where, 'S', String(checkUint(where, e.size)), /^S$/);
    if (e.vsize !== undefined) line += checkField(where, 'W', String(checkUint(where, e.vsize)), /^W$/);
    out += `${line} :${base}\n`;
  }
  return out;
}

function checkUint(where: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw dataError(`cannot write dovecot-uidlist: invalid size ${n} for ${where}`);
  return n;
}
