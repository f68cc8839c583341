/**
 * Reading one Maildir mailbox directory as it is right now: its message files, its
 * `dovecot-uidlist` and `dovecot-keywords`, and a fingerprint of their mtimes that tells a
 * later scan whether anything can have changed.
 */
import { closeSync, mkdirSync, opendirSync, readSync, readdirSync, statSync, unlinkSync, writeFileSync, type Dir } from 'node:fs';
import { hostname } from 'node:os';
import { direntKind, entryKind, openFileSync, readFileIfExists, refusalOf, refusedError } from '../safe-fs.js';
import { processAlive } from '../process-alive.js';
import { warnOnce } from './layout.js';
import { dirname, join } from 'node:path';
import { chownPath, ownerFor } from './ownership.js';
import { dataError, fsError } from '../../model/errors.js';
import { hostPart, parseMaildirFilename, type MaildirFilename } from './filename.js';
import { parseKeywordsFile } from './keywords-file.js';
import { parseAppendedLines, parseUidlist, type Uidlist } from './uidlist.js';

export const UIDLIST_FILENAME = 'dovecot-uidlist';
export const KEYWORDS_FILENAME = 'dovecot-keywords';

export interface MessageFile {
  /** Relative to the mailbox directory: `new/NAME` or `cur/NAME`. */
  file: string;
  parsed: MaildirFilename;
}

export interface FileListing {
  /**
   * Each message file's name in new/ or cur/ (see `inNew`) by its basename. Only the name is
   * kept: a scan compares it with the name the index holds, and parses it (parseMaildirFilename)
   * only when the two differ, which for most of a large mailbox they do not.
   */
  byBasename: Map<string, string>;
  /** The basenames whose file is in new/; every other one is in cur/. */
  inNew: Set<string>;
  /** Files whose basename another file already has. */
  duplicates: MessageFile[];
  /** Entries of new/ and cur/ that are not readable mail files (links, FIFOs, unusable names). */
  skipped: string[];
}

/** The listed file of a basename, relative to the mailbox directory (`cur/NAME`, `new/NAME`). */
export function listedFile(listing: FileListing, basename: string): string | undefined {
  const name = listing.byBasename.get(basename);
  if (name === undefined) return undefined;
  return (listing.inNew.size > 0 && listing.inNew.has(basename) ? 'new/' : 'cur/') + name;
}

/** The listed file of a basename with its name parsed. */
export function listedMessage(listing: FileListing, basename: string): MessageFile | undefined {
  const name = listing.byBasename.get(basename);
  if (name === undefined) return undefined;
  return { file: listedFile(listing, basename)!, parsed: parseMaildirFilename(name) };
}

/**
 * `clean`: read without a warning, ending with a newline, so lines can be appended to it.
 * `asIndexed`: not read from the file but from the change index (see the Maildir scan).
 */
export type UidlistRead =
  | { state: 'ok'; uidlist: Uidlist; clean: boolean; asIndexed?: boolean }
  | { state: 'missing' }
  | { state: 'corrupt'; reason: string };

/**
 * Makes sure a mailbox directory and its cur/, new/ and tmp/ are real directories, creating
 * what is missing. A link or a special file in their place is refused: writing through
 * `cur -> /etc` or `.Evil -> /home/other` would put mail, or take it, where it is not ours.
 */
export function ensureMaildirDirs(dir: string, isInbox: boolean): void {
  const kinds = ['cur', 'new', 'tmp'].map((sub) => entryKind(join(dir, sub)));
  const marker = join(dir, 'maildirfolder');
  const markerKind = isInbox ? 'file' : entryKind(marker);
  // The usual case, checked without mkdir: a recursive mkdir of an existing directory makes
  // Node build and drop an error object, and this runs on every access to a mailbox.
  if (kinds.every((k) => k === 'directory') && markerKind === 'file') return;
  const dirKind = entryKind(dir);
  if (dirKind !== 'directory' && dirKind !== 'missing') throw refusedError(dir, dirKind);
  ['cur', 'new', 'tmp'].forEach((sub, i) => {
    if (kinds[i] !== 'directory' && kinds[i] !== 'missing') throw refusedError(join(dir, sub), kinds[i]!);
  });
  if (markerKind !== 'file' && markerKind !== 'missing') throw refusedError(marker, markerKind);
  try {
    const made = mkdirSync(dir, { recursive: true });
    const owner = ownerFor(made ? dirname(made) : dir);
    if (made) for (let d = dir; d.length >= made.length; d = dirname(d)) chownPath(d, owner);
    for (const sub of ['cur', 'new', 'tmp']) {
      if (mkdirSync(join(dir, sub), { recursive: true })) chownPath(join(dir, sub), owner);
    }
    if (markerKind === 'missing') {
      writeFileSync(marker, '', { flag: 'wx' });
      chownPath(marker, owner);
    }
  } catch (err) {
    throw fsError(err, `mailbox directory ${dir}`);
  }
}

/**
 * A message file name the uidlist cannot carry (a line break would end its line early): such a
 * file is left where it is, with a warning, and the rest of the mailbox is read.
 */
function unusableFileName(name: string): boolean {
  return name.indexOf('\n') >= 0 || name.indexOf('\r') >= 0;
}

/** Reads new/ before cur/: a file moved from new/ to cur/ meanwhile is then seen twice, never missed. */
export function listMessageFiles(dir: string, warn: (msg: string) => void = () => {}): FileListing {
  const listing: FileListing = { byBasename: new Map(), inNew: new Set(), duplicates: [], skipped: [] };
  for (const sub of ['new', 'cur'] as const) {
    readEntries(dir, sub, warn, listing.skipped, (name, basename) => {
      const seen = listing.byBasename.get(basename);
      if (seen === undefined) {
        listing.byBasename.set(basename, name);
        if (sub === 'new') listing.inNew.add(basename);
      } else if (sub === 'cur' && listing.inNew.has(basename) && !exists(join(dir, 'new', seen))) {
        listing.byBasename.set(basename, name);
        listing.inNew.delete(basename);
      } else listing.duplicates.push({ file: `${sub}/${name}`, parsed: parseMaildirFilename(name) });
    });
  }
  return listing;
}

/**
 * A second look for some basenames only, the way listMessageFiles would have found them: each
 * one found (in new/ or cur/, under whatever name it has now) is added to `listing`. Nothing
 * else is kept, so this costs the reading of the directories and no listing of their own.
 * Returns how many of them it found.
 */
export function lookAgain(dir: string, listing: FileListing, basenames: ReadonlySet<string>, warn: (msg: string) => void = () => {}): number {
  let found = 0;
  for (const sub of ['new', 'cur'] as const) {
    readEntries(dir, sub, warn, [], (name, basename) => {
      if (!basenames.has(basename)) return;
      const seen = listing.byBasename.get(basename);
      if (seen !== undefined && !(sub === 'cur' && listing.inNew.has(basename) && !exists(join(dir, 'new', seen)))) return;
      if (seen === undefined) found++;
      listing.byBasename.set(basename, name);
      if (sub === 'new') listing.inNew.add(basename);
      else listing.inNew.delete(basename);
    });
  }
  return found;
}

/** Calls `take` with each usable message file name of new/ or cur/ and its basename. */
function readEntries(dir: string, sub: 'new' | 'cur', warn: (msg: string) => void, skipped: string[], take: (name: string, basename: string) => void): void {
  // Entry by entry rather than one array of the whole directory: a million-message cur/ read
  // at once held a million Dirent objects beside the listing built from them.
  let entries: Dir;
  try {
    entries = opendirSync(join(dir, sub), { bufferSize: 1024 });
  } catch (err) {
    throw fsError(err, `reading ${join(dir, sub)}`);
  }
  try {
    for (;;) {
      let dirent;
      try {
        dirent = entries.readSync();
      } catch (err) {
        throw fsError(err, `reading ${join(dir, sub)}`);
      }
      if (dirent === null) return;
      const name = dirent.name;
      if (name.charCodeAt(0) === 46) continue; // '.'
      if (!dirent.isFile()) {
        const kind = direntKind(dirent);
        // A link could name any file of the machine (/etc/shadow); a FIFO would block the reader.
        warnOnce(warn, `skipping ${join(dir, sub, name)}: it ${refusalOf(kind)}`);
        skipped.push(`${sub}/${name}`);
        continue;
      }
      if (unusableFileName(name)) {
        warnOnce(warn, `skipping ${JSON.stringify(join(dir, sub, name))}: a line break in a file name cannot be kept in dovecot-uidlist; rename the file`);
        skipped.push(`${sub}/${name}`);
        continue;
      }
      // The basename ends at the first ':', as parseMaildirFilename and Dovecot cut it.
      const colon = name.indexOf(':');
      take(name, colon < 0 ? name : name.slice(0, colon));
    }
  } finally {
    entries.closeSync();
  }
}

export function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The last uidlists read, by path, with their text: a scan that finds a change reads the uidlist
 * more than once (first look, again under the lock), and a 100k-entry one takes tens of
 * milliseconds to parse. Reading is cheap; only text identical to the cached one is reused, and
 * text that only has lines added at its end (an append by Dovecot, by our saves or by our own
 * scan) is read from where the cached text ended.
 * Held weakly: while a scan uses a parsed uidlist a second read finds it, but once nothing uses
 * it the collector may take it with its text (a million-line uidlist is over 100 MB of both).
 */
const parsedUidlists = new Map<string, WeakRef<Uidlist>>();
interface UidlistSource {
  /**
   * The text in the pieces it was read in: an appended piece is its own string, so that the
   * entries read from it do not keep the whole text a second time.
   */
  parts: string[];
  length: number;
  byteLength: number;
  clean: boolean;
  /** Each entry's UID by basename, when the parser made it. */
  uids?: Map<string, number>;
}
const uidlistSources = new WeakMap<Uidlist, UidlistSource>();
const PARSED_UIDLISTS_KEPT = 8;
/** Past this many appended pieces, the text is read whole again. */
const MAX_PARTS = 16;

function startsWithParts(text: string, source: UidlistSource): boolean {
  let at = 0;
  for (const part of source.parts) {
    if (!text.startsWith(part, at)) return false;
    at += part.length;
  }
  return true;
}

function remember(path: string, uidlist: Uidlist, source: UidlistSource): void {
  // Shared between readers: frozen, so that a caller that changed it would fail loudly.
  Object.freeze(uidlist.entries);
  Object.freeze(uidlist);
  parsedUidlists.delete(path);
  parsedUidlists.set(path, new WeakRef(uidlist));
  uidlistSources.set(uidlist, source);
  if (parsedUidlists.size > PARSED_UIDLISTS_KEPT) parsedUidlists.delete(parsedUidlists.keys().next().value!);
}

/** Each entry's UID by its basename, made once per parsed uidlist. */
export function uidsByBasename(uidlist: Uidlist): ReadonlyMap<string, number> {
  const source = uidlistSources.get(uidlist);
  if (source?.uids) return source.uids;
  const uids = new Map<string, number>();
  for (const e of uidlist.entries) uids.set(e.basename, e.uid);
  if (source) source.uids = uids;
  return uids;
}

export function readUidlist(dir: string, warn: (msg: string) => void): UidlistRead {
  const path = join(dir, UIDLIST_FILENAME);
  const bytes = readFileIfExists(path);
  if (bytes === undefined) return { state: 'missing' };
  const text = bytes.toString('utf8');
  const cached = parsedUidlists.get(path)?.deref();
  const source = cached && uidlistSources.get(cached);
  if (cached && source && text.length >= source.length && startsWithParts(text, source)) {
    if (text.length === source.length) return { state: 'ok', uidlist: cached, clean: source.clean };
    if (source.clean && source.parts.length < MAX_PARTS && bytes.length > source.byteLength) {
      // Lines added at the end: only they are read. The lines before were read without a warning,
      // so each was one entry, after the header line.
      const added = bytes.subarray(source.byteLength).toString('utf8');
      const tail = parseAppendedLines(cached, uidsByBasename(cached), added, cached.entries.length + 2, path);
      if (tail) {
        for (const w of tail.warnings) warn(w);
        const clean = tail.warnings.length === 0;
        remember(path, tail.uidlist, { parts: [...source.parts, added], length: text.length, byteLength: bytes.length, clean });
        return { state: 'ok', uidlist: tail.uidlist, clean };
      }
    }
  }
  // Dovecot always ends the header with '\n'. A file without one was cut inside its header;
  // the part left can still parse ("3 V1 N4" without G), and trusting it would drop the
  // mailbox GUID and every UID. Treated as corrupt, it is rebuilt from the change index.
  if (text !== '' && !text.includes('\n')) {
    return { state: 'corrupt', reason: `${path}: dovecot-uidlist header cut short (no newline): ${JSON.stringify(text.slice(0, 80))}` };
  }
  try {
    const { uidlist, warnings, uids } = parseUidlist(text, path);
    for (const w of warnings) warn(w);
    const clean = warnings.length === 0;
    remember(path, uidlist, { parts: [text], length: text.length, byteLength: bytes.length, clean, uids });
    return { state: 'ok', uidlist, clean };
  } catch (err) {
    return { state: 'corrupt', reason: (err as Error).message };
  }
}

/** The mailbox GUID from the uidlist header, reading only its first line. */
export function readUidlistGuid(dir: string): string | undefined {
  const path = join(dir, UIDLIST_FILENAME);
  let fd: number;
  try {
    fd = openFileSync(path);
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(512);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const line = buf.subarray(0, n).toString('latin1').split('\n', 1)[0] ?? '';
    if (!line.startsWith('3 ')) return undefined;
    const g = line.split(' ').find((f) => f.startsWith('G'));
    return g && /^G[0-9a-f]{32}$/.test(g) ? g.slice(1) : undefined;
  } finally {
    closeSync(fd);
  }
}

export function readKeywords(dir: string, warn: (msg: string) => void): (string | undefined)[] {
  const path = join(dir, KEYWORDS_FILENAME);
  const bytes = readFileIfExists(path);
  if (bytes === undefined) return [];
  const text = bytes.toString('utf8');
  const { keywords, warnings } = parseKeywordsFile(text, path);
  for (const w of warnings) warn(w);
  return keywords;
}

export interface Fingerprint {
  value: string;
  /** False when something changed so recently that a change in the same clock tick could hide. */
  safe: boolean;
  /** One part each for new/, cur/, the uidlist and the keywords file, in that order. */
  parts: string[];
}

/**
 * The fingerprint of a mailbox whose uidlist we just rewrote under its lock: new/ and cur/ as
 * they were before the listing that uidlist reflects, the files as they are after our write.
 * A change to new/ or cur/ after that listing began moves their mtime away from this.
 */
export function afterOwnRewrite(beforeListing: Fingerprint, afterWrite: Fingerprint): string {
  return [...beforeListing.parts.slice(0, 2), ...afterWrite.parts.slice(2)].join(':');
}

/** Renames, deliveries and rewrites all touch one of these mtimes. */
export function fingerprint(dir: string): Fingerprint {
  const parts: string[] = [];
  let newest = 0n;
  for (const sub of ['new', 'cur', UIDLIST_FILENAME, KEYWORDS_FILENAME]) {
    let st;
    try {
      // Many mailboxes have no keywords file: asked not to throw, Node builds no error for it.
      st = statSync(join(dir, sub), { bigint: true, throwIfNoEntry: false });
    } catch {
      st = undefined;
    }
    if (!st) {
      parts.push('-');
      continue;
    }
    parts.push(`${st.mtimeNs}.${st.ino}`);
    if (st.mtimeNs > newest) newest = st.mtimeNs;
  }
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  return { value: parts.join(':'), safe: nowNs - newest > 2_000_000_000n, parts };
}

export function requireMaildir(dir: string, what: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch (err) {
    throw fsError(err, what);
  }
  if (!st.isDirectory()) throw dataError(`${what}: not a directory`);
}

/**
 * Dovecot's rule: a file in tmp/ untouched for 36 hours is a dead delivery, never a message.
 * The ctime counts too because savers set a tmp file's mtime to the received date before the
 * rename, and the ctime is the one time nobody can set back.
 */
const STALE_TMP_MS = 36 * 3600 * 1000;

/** What marks a tmp/ file as one of ours: the saver's basename, then this suffix. */
export const OWN_TMP_SUFFIX = '.mailferry-tmp';

/** The pid in one of our own tmp/ names, when it was written on this host. */
function ownTmpPid(name: string, host: string): number | undefined {
  if (!name.endsWith(OWN_TMP_SUFFIX)) return undefined;
  const m = /^\d+\.M\d+P(\d+)Q\d+\.(.+)$/.exec(name.slice(0, -OWN_TMP_SUFFIX.length));
  if (!m || m[2] !== hostPart(host)) return undefined;
  return Number(m[1]);
}

/**
 * Removes dead deliveries from tmp/ (what a crash mid-save leaves): any regular file after
 * Dovecot's 36 hours, and at once our own files whose process on this host is gone. Another
 * program's recent file is never touched.
 */
export function cleanStaleTmp(dir: string, warn: (msg: string) => void, now = Date.now()): void {
  const tmp = join(dir, 'tmp');
  let entries;
  try {
    entries = readdirSync(tmp, { withFileTypes: true });
  } catch {
    return;
  }
  const cutoff = now - STALE_TMP_MS;
  const host = hostname();
  for (const entry of entries) {
    if (direntKind(entry) !== 'file') continue;
    const path = join(tmp, entry.name);
    try {
      const pid = ownTmpPid(entry.name, host);
      const deadOwn = pid !== undefined && pid !== process.pid && !processAlive(pid);
      const st = deadOwn ? undefined : statSync(path);
      if (deadOwn || (st && st.mtimeMs < cutoff && st.ctimeMs < cutoff)) unlinkSync(path);
    } catch (err) {
      warn(`${path}: could not remove stale temporary file (${(err as Error).message})`);
    }
  }
}
