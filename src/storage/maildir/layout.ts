/**
 * Where each mailbox of a Maildir lives: Maildir++ (`.Folder.Sub` beside INBOX's own
 * cur/new/tmp, separator `.`) or LAYOUT=fs (nested directories, separator `/`). Names on disk
 * are modified UTF-7, as Dovecot stores them unless told to use UTF-8.
 */
import { readdirSync, statSync } from 'node:fs';
import { direntKind, entryKind, refusalOf } from '../safe-fs.js';
import { join } from 'node:path';
import type { MaildirLocation } from '../../config/location.js';
import { usageError } from '../../model/errors.js';
import { canonicalName, formatMailboxName, isInbox, parseMailboxName } from '../../model/mailbox-name.js';
import { decodeMutf7, encodeMutf7 } from '../../model/mutf7.js';
import type { MailboxName } from '../store.js';

/** Directories inside a maildir that are never mailboxes. */
const MAILDIR_SUBDIRS = new Set(['cur', 'new', 'tmp']);

export interface MailboxDir {
  name: MailboxName;
  dir: string;
}

export { canonicalName, isInbox };

export class MaildirLayout {
  readonly location: MaildirLocation;
  readonly separator: string;

  constructor(location: MaildirLocation) {
    this.location = location;
    this.separator = location.layout === 'fs' ? '/' : '.';
  }

  /** Splits a user-typed mailbox name on this layout's separator. */
  parseName(text: string): MailboxName {
    return parseMailboxName(text, this.separator);
  }

  formatName(name: MailboxName): string {
    return formatMailboxName(name, this.separator);
  }

  validate(name: MailboxName): void {
    const shown = this.formatName(name);
    if (name.length === 0) throw usageError('empty mailbox name');
    for (const part of name) {
      if (part === '') throw usageError(`invalid mailbox name '${shown}': empty hierarchy level`);
      if (part.includes('/')) throw usageError(`invalid mailbox name '${shown}': '/' is not allowed in a level`);
      // A line break would split the subscriptions file and the uidlist; other control bytes are
      // as good as invisible in every listing that shows the name.
      if (/[\u0000-\u001f\u007f]/.test(part)) throw usageError(`invalid mailbox name ${JSON.stringify(shown)}: control characters are not allowed`);
      if (this.location.layout === 'maildir++' && part.includes('.')) {
        throw usageError(`invalid mailbox name '${shown}': '.' is the hierarchy separator of Maildir++`);
      }
      if (part === '.' || part === '..' || part.startsWith('~')) {
        throw usageError(`invalid mailbox name '${shown}': '${part}' is not allowed`);
      }
      // A LAYOUT=fs listing takes dot-entries for Dovecot's and other programs' own files, so
      // such a folder, once created, would never be seen again.
      if (this.location.layout === 'fs' && part.startsWith('.')) {
        throw usageError(`invalid mailbox name '${shown}': a level starting with '.' cannot be kept with LAYOUT=fs`);
      }
      if (this.location.layout === 'fs' && MAILDIR_SUBDIRS.has(part)) {
        throw usageError(`invalid mailbox name '${shown}': '${part}' is a maildir directory name`);
      }
    }
  }

  dirOf(name: MailboxName): string {
    const canonical = canonicalName(name);
    if (isInbox(canonical)) return this.location.inbox;
    this.validate(canonical);
    const encoded = canonical.map(encodeMutf7);
    if (this.location.layout === 'fs') return join(this.location.root, ...encoded);
    return join(this.location.root, `.${encoded.join('.')}`);
  }

  /** Every mailbox directory, INBOX first. `warn` hears of directories whose names cannot be decoded. */
  listMailboxDirs(warn: (msg: string) => void): MailboxDir[] {
    const found: MailboxDir[] = [{ name: ['INBOX'], dir: this.location.inbox }];
    if (this.location.layout === 'fs') this.walkFs(this.location.root, [], found, warn);
    else this.listMaildirPlusPlus(found, warn);
    return found;
  }

  private listMaildirPlusPlus(found: MailboxDir[], warn: (msg: string) => void): void {
    const root = this.location.root;
    for (const entry of readdirSync(root, { withFileTypes: true })) {
      const n = entry.name;
      // `..DOVECOT-TRASH` and similar are Dovecot's own half-deleted folders.
      if (!n.startsWith('.') || n === '.' || n === '..' || n.startsWith('..')) continue;
      const path = join(root, n);
      if (!usableFolderDir(path, direntKind(entry), warn)) continue;
      const parts = n.slice(1).split('.');
      const name = decodeParts(parts, path, warn);
      if (!name || isInbox(name)) continue;
      found.push({ name, dir: path });
    }
  }

  /**
   * Descends only into real directories, each once by device and inode: a link (`up -> ..`)
   * is never followed, and a bind mount that loops cannot make the walk endless.
   */
  private walkFs(dir: string, prefix: string[], found: MailboxDir[], warn: (msg: string) => void, seen = new Set<string>()): void {
    const st = statSync(dir, { bigint: true });
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return warnOnce(warn, `skipping ${dir}: the same directory was already listed (a loop in the mail tree)`);
    seen.add(id);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const n = entry.name;
      if (n.startsWith('.') || MAILDIR_SUBDIRS.has(n)) continue;
      const path = join(dir, n);
      const kind = direntKind(entry);
      if (kind === 'file') continue;
      if (kind !== 'directory') {
        warnOnce(warn, `skipping ${path}: it ${refusalOf(kind)}`);
        continue;
      }
      const decoded = decodeParts([n], path, warn);
      if (!decoded) continue;
      const name = [...prefix, ...decoded];
      if (prefix.length === 0 && isInbox(name) && path === this.location.inbox) continue;
      if (isMaildir(path) && usableFolderDir(path, kind, warn)) found.push({ name: canonicalName(name), dir: path });
      this.walkFs(path, name, found, warn, seen);
    }
  }
}

/**
 * Dovecot's rule for what is a mailbox: a directory holding `cur`, or marked `maildirfolder`,
 * or carrying a `dovecot-uidlist`. Anything else under the root (`.ssh`, `.git`, `.notmuch`,
 * a project directory) is not mail, is never listed, and so is never deleted.
 */
export function isMaildir(path: string): boolean {
  return ['cur', 'maildirfolder', 'dovecot-uidlist'].some((marker) => entryKind(join(path, marker)) !== 'missing');
}

/** A folder directory worth listing: real (not a link), a mailbox, and with real mail directories. */
function usableFolderDir(path: string, kind: ReturnType<typeof entryKind>, warn: (msg: string) => void): boolean {
  if (kind === 'file') return false;
  if (kind !== 'directory') {
    warnOnce(warn, `skipping ${path}: it ${refusalOf(kind)}`);
    return false;
  }
  if (!isMaildir(path)) return false;
  for (const sub of MAILDIR_SUBDIRS) {
    const k = entryKind(join(path, sub));
    if (k !== 'directory' && k !== 'missing') {
      warnOnce(warn, `skipping mailbox ${path}: ${sub} ${refusalOf(k)}`);
      return false;
    }
  }
  return true;
}

/** One warning per message per process: every listing of a store walks the same tree again. */
const warned = new Set<string>();
export function warnOnce(warn: (msg: string) => void, msg: string): void {
  if (warned.has(msg)) return;
  warned.add(msg);
  warn(msg);
}

function decodeParts(parts: string[], path: string, warn: (msg: string) => void): MailboxName | undefined {
  try {
    return parts.map(decodeMutf7);
  } catch (err) {
    warn(`skipping ${path}: folder name is not valid modified UTF-7 (${(err as Error).message})`);
    return undefined;
  }
}
