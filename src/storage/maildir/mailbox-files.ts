/**
 * Reading one Maildir mailbox directory as it is right now: its message files, its
 * `dovecot-uidlist` and `dovecot-keywords`, and a fingerprint of their mtimes that tells a
 * later scan whether anything can have changed.
 */
import { existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { chownPath, ownerFor } from './ownership.js';
import { dataError, fsError } from '../../model/errors.js';
import { parseMaildirFilename, type MaildirFilename } from './filename.js';
import { parseKeywordsFile } from './keywords-file.js';
import { parseUidlist, type Uidlist } from './uidlist.js';

export const UIDLIST_FILENAME = 'dovecot-uidlist';
export const KEYWORDS_FILENAME = 'dovecot-keywords';

export interface MessageFile {
  /** Relative to the mailbox directory: `new/NAME` or `cur/NAME`. */
  file: string;
  parsed: MaildirFilename;
}

export interface FileListing {
  byBasename: Map<string, MessageFile>;
  /** Files whose basename another file already has. */
  duplicates: MessageFile[];
}

export type UidlistRead = { state: 'ok'; uidlist: Uidlist } | { state: 'missing' } | { state: 'corrupt'; reason: string };

export function ensureMaildirDirs(dir: string, isInbox: boolean): void {
  // The usual case, checked without mkdir: a recursive mkdir of an existing directory makes
  // Node build and drop an error object, and this runs on every access to a mailbox.
  if (['cur', 'new', 'tmp'].every((sub) => existsSync(join(dir, sub))) && (isInbox || existsSync(join(dir, 'maildirfolder')))) return;
  try {
    const made = mkdirSync(dir, { recursive: true });
    const owner = ownerFor(made ? dirname(made) : dir);
    if (made) for (let d = dir; d.length >= made.length; d = dirname(d)) chownPath(d, owner);
    for (const sub of ['cur', 'new', 'tmp']) {
      if (mkdirSync(join(dir, sub), { recursive: true })) chownPath(join(dir, sub), owner);
    }
    if (!isInbox) {
      const marker = join(dir, 'maildirfolder');
      try {
        statSync(marker);
      } catch {
        writeFileSync(marker, '');
        chownPath(marker, owner);
      }
    }
  } catch (err) {
    throw fsError(err, `mailbox directory ${dir}`);
  }
}

/** Reads new/ before cur/: a file moved from new/ to cur/ meanwhile is then seen twice, never missed. */
export function listMessageFiles(dir: string): FileListing {
  const byBasename = new Map<string, MessageFile>();
  const duplicates: MessageFile[] = [];
  for (const sub of ['new', 'cur']) {
    let names: string[];
    try {
      names = readdirSync(join(dir, sub));
    } catch (err) {
      throw fsError(err, `reading ${join(dir, sub)}`);
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const entry: MessageFile = { file: `${sub}/${name}`, parsed: parseMaildirFilename(name) };
      const seen = byBasename.get(entry.parsed.basename);
      if (seen === undefined) byBasename.set(entry.parsed.basename, entry);
      else if (seen.file.startsWith('new/') && sub === 'cur' && !exists(join(dir, seen.file))) {
        byBasename.set(entry.parsed.basename, entry);
      } else duplicates.push(entry);
    }
  }
  return { byBasename, duplicates };
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
 * up to three times (first look, second look, under the lock), and a 100k-entry one takes tens
 * of milliseconds to parse. Reading is cheap; only text identical to the cached one is reused.
 */
const parsedUidlists = new Map<string, { text: string; uidlist: Uidlist }>();
const PARSED_UIDLISTS_KEPT = 8;

export function readUidlist(dir: string, warn: (msg: string) => void): UidlistRead {
  const path = join(dir, UIDLIST_FILENAME);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    throw fsError(err, path);
  }
  const cached = parsedUidlists.get(path);
  if (cached && cached.text === text) return { state: 'ok', uidlist: cached.uidlist };
  // Dovecot always ends the header with '\n'. A file without one was cut inside its header;
  // the part left can still parse ("3 V1 N4" without G), and trusting it would drop the
  // mailbox GUID and every UID. Treated as corrupt, it is rebuilt from the change index.
  if (text !== '' && !text.includes('\n')) {
    return { state: 'corrupt', reason: `${path}: dovecot-uidlist header cut short (no newline): ${JSON.stringify(text.slice(0, 80))}` };
  }
  try {
    const { uidlist, warnings } = parseUidlist(text, path);
    for (const w of warnings) warn(w);
    // Shared between readers: frozen, so that a caller that changed it would fail loudly.
    Object.freeze(uidlist.entries);
    Object.freeze(uidlist);
    parsedUidlists.delete(path);
    parsedUidlists.set(path, { text, uidlist });
    if (parsedUidlists.size > PARSED_UIDLISTS_KEPT) parsedUidlists.delete(parsedUidlists.keys().next().value!);
    return { state: 'ok', uidlist };
  } catch (err) {
    return { state: 'corrupt', reason: (err as Error).message };
  }
}

/** The mailbox GUID from the uidlist header, reading only its first line. */
export function readUidlistGuid(dir: string): string | undefined {
  const path = join(dir, UIDLIST_FILENAME);
  let fd: number;
  try {
    fd = openSync(path, 'r');
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
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fsError(err, path);
  }
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

/** Removes dead deliveries from tmp/ (what a crash mid-save leaves), as Dovecot does. */
export function cleanStaleTmp(dir: string, warn: (msg: string) => void, now = Date.now()): void {
  const tmp = join(dir, 'tmp');
  let names: string[];
  try {
    names = readdirSync(tmp);
  } catch {
    return;
  }
  const cutoff = now - STALE_TMP_MS;
  for (const name of names) {
    const path = join(tmp, name);
    try {
      const st = statSync(path);
      if (st.isFile() && st.mtimeMs < cutoff && st.ctimeMs < cutoff) unlinkSync(path);
    } catch (err) {
      warn(`${path}: could not remove stale temporary file (${(err as Error).message})`);
    }
  }
}
