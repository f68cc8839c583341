/**
 * Where each mailbox of a Maildir lives: Maildir++ (`.Folder.Sub` beside INBOX's own
 * cur/new/tmp, separator `.`) or LAYOUT=fs (nested directories, separator `/`). Names on disk
 * are modified UTF-7, as Dovecot stores them unless told to use UTF-8.
 */
import { readdirSync, statSync } from 'node:fs';
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
      if (part.includes('\u0000')) throw usageError(`invalid mailbox name '${shown}': NUL is not allowed`);
      if (this.location.layout === 'maildir++' && part.includes('.')) {
        throw usageError(`invalid mailbox name '${shown}': '.' is the hierarchy separator of Maildir++`);
      }
      if (part === '.' || part === '..' || part.startsWith('~')) {
        throw usageError(`invalid mailbox name '${shown}': '${part}' is not allowed`);
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
      if (!isDirectory(join(root, n), entry)) continue;
      const parts = n.slice(1).split('.');
      const name = decodeParts(parts, join(root, n), warn);
      if (!name || isInbox(name)) continue;
      found.push({ name, dir: join(root, n) });
    }
  }

  private walkFs(dir: string, prefix: string[], found: MailboxDir[], warn: (msg: string) => void): void {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const n = entry.name;
      if (n.startsWith('.') || MAILDIR_SUBDIRS.has(n)) continue;
      const path = join(dir, n);
      if (!isDirectory(path, entry)) continue;
      const decoded = decodeParts([n], path, warn);
      if (!decoded) continue;
      const name = [...prefix, ...decoded];
      if (prefix.length === 0 && isInbox(name) && path === this.location.inbox) continue;
      if (isMaildir(path)) found.push({ name: canonicalName(name), dir: path });
      this.walkFs(path, name, found, warn);
    }
  }
}

function isDirectory(path: string, entry: { isDirectory(): boolean; isSymbolicLink(): boolean }): boolean {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A directory is a mailbox when it holds mail directories (or Dovecot marked it as one). */
export function isMaildir(path: string): boolean {
  for (const marker of ['cur', 'maildirfolder']) {
    try {
      statSync(join(path, marker));
      return true;
    } catch {
      // try the next marker
    }
  }
  return false;
}

function decodeParts(parts: string[], path: string, warn: (msg: string) => void): MailboxName | undefined {
  try {
    return parts.map(decodeMutf7);
  } catch (err) {
    warn(`skipping ${path}: folder name is not valid modified UTF-7 (${(err as Error).message})`);
    return undefined;
  }
}
