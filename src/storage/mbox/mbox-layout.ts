/**
 * Where each mailbox of an mbox root lives, as Dovecot lays it out: mailbox `A/B` is the file
 * ROOT/A/B (parents are plain directories, so a mailbox holding mail cannot have children),
 * INBOX is its own file (ROOT/inbox unless INBOX= says otherwise), names are modified UTF-7.
 *
 * What is a mailbox: Dovecot lists every entry, but an mbox root is whatever directory the user
 * named, and it may hold other files. A file is a mailbox when it is empty, starts with a
 * `From ` line, or is known to the change index as one; anything else is left alone (a warning
 * names it once). Hidden entries (Dovecot's `.imap`, `.subscriptions`, mailferry's temp files,
 * a `.git`) and dotlocks are never mailboxes. No link is followed: a folder that is a symbolic
 * link, a FIFO or a device is skipped when listing and refused when named, and each directory
 * is descended once (by inode), as a real directory.
 */
import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import type { MboxLocation } from '../../config/location.js';
import { dataError, fsError, usageError } from '../../model/errors.js';
import { canonicalName, isInbox } from '../../model/mailbox-name.js';
import { decodeMutf7, encodeMutf7 } from '../../model/mutf7.js';
import { direntKind, entryKind, refusalOf, refusedError, type EntryKind } from '../safe-fs.js';
import type { MailboxName } from '../store.js';
import { levelProblem } from './mailbox-name-problem.js';
import { startsAsMbox } from './mbox-file-start.js';
import { isOwnEntry } from './mbox-own-files.js';

export const MBOX_SEPARATOR = '/';

/** What is at a mailbox's path: its mbox file, nothing, or something that is not a mailbox. */
export type MailboxEntry = 'mailbox' | 'missing' | 'foreign' | 'directory';

export class MboxLayout {
  /** Paths already warned about, so that a listing repeated by one run warns once. */
  private readonly warned = new Set<string>();

  constructor(readonly location: MboxLocation) {}

  formatName(name: MailboxName): string {
    return name.join(MBOX_SEPARATOR);
  }

  /** The mbox file of a mailbox; rejects names that cannot be files. */
  pathOf(name: MailboxName): string {
    const canonical = canonicalName(name);
    if (isInbox(canonical)) return this.location.inbox;
    for (const part of canonical) {
      const problem = levelProblem(part);
      if (problem) throw usageError(`mailbox name '${this.formatName(canonical)}' cannot be stored in mbox: ${problem}`);
    }
    return join(this.location.root, ...canonical.map(encodeMutf7));
  }

  /**
   * What is at the path of `name`, checking every directory on the way down from the root
   * without following links. A link or special file anywhere on the way is refused with an
   * error naming it; `known` says the change index knows the mailbox (a file it knows is one).
   */
  entryOf(name: MailboxName, known: boolean): { path: string; entry: MailboxEntry } {
    const path = this.pathOf(name);
    const levels = isInbox(canonicalName(name)) ? [path] : this.levelsOf(path);
    for (const [i, p] of levels.entries()) {
      const kind = entryKind(p);
      const last = i === levels.length - 1;
      if (kind === 'missing') return { path, entry: 'missing' };
      if (kind === 'symlink' || kind === 'special') throw refusedError(p, kind);
      if (!last && kind === 'file') {
        throw usageError(`${p} is an mbox file, and in an mbox tree a mailbox file cannot have children`);
      }
      if (last && kind === 'directory') return { path, entry: 'directory' };
    }
    return { path, entry: known || startsAsMbox(path) ? 'mailbox' : 'foreign' };
  }

  /** The error for a mailbox path that holds a file that is not an mbox. */
  foreignError(path: string) {
    return dataError(`${path} is not an mbox file (it is not empty and does not start with a "From " line); mailferry leaves it alone`);
  }

  /**
   * Makes the directories above a mailbox file, one level at a time, refusing a link or a
   * file where a directory must be (mkdir -p would follow a link out of the tree).
   */
  makeParents(path: string): void {
    const levels = this.levelsOf(path).slice(0, -1);
    for (const dir of levels) {
      const kind = entryKind(dir);
      if (kind === 'directory') continue;
      if (kind === 'file') throw usageError(`${dir} is an mbox file, and in an mbox tree a mailbox file cannot have children`);
      if (kind !== 'missing') throw refusedError(dir, kind);
      try {
        mkdirSync(dir);
      } catch (err) {
        throw fsError(err, `creating ${dir}`);
      }
    }
  }

  /** Each path from the first level below the root down to `path`. */
  private levelsOf(path: string): string[] {
    const rel = relative(this.location.root, path);
    const parts = rel.split(sep);
    return parts.map((_, i) => join(this.location.root, ...parts.slice(0, i + 1)));
  }

  private warnOnce(path: string, msg: string, warn: (msg: string) => void): void {
    if (this.warned.has(path)) return;
    this.warned.add(path);
    warn(msg);
  }

  /** Every mailbox file under the root except INBOX, with its name; `known` says the index knows a name. */
  listMailboxFiles(warn: (msg: string) => void, known: (name: MailboxName) => boolean = () => false): { name: MailboxName; path: string }[] {
    const out: { name: MailboxName; path: string }[] = [];
    const inbox = resolve(this.location.inbox);
    const seen = new Set<string>();
    const skip = (path: string, kind: EntryKind) => this.warnOnce(path, `${path} ${refusalOf(kind)}; skipped, not a mailbox`, warn);
    const walk = (dir: string, parts: string[]) => {
      let id: string;
      try {
        const st = lstatSync(dir);
        id = `${st.dev}:${st.ino}`;
      } catch {
        return;
      }
      if (seen.has(id)) return;
      seen.add(id);
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const path = join(dir, e.name);
        if (isOwnEntry(e.name)) continue;
        const kind = direntKind(e);
        if (e.name.startsWith('.')) {
          this.warnOnce(path, `${path} is hidden, and hidden entries of an mbox tree are not mailboxes; left alone`, warn);
          continue;
        }
        if (kind === 'symlink' || kind === 'special') {
          skip(path, kind);
          continue;
        }
        let decoded: string;
        try {
          decoded = decodeMutf7(e.name);
        } catch {
          this.warnOnce(path, `${path}: name is not valid modified UTF-7; skipped`, warn);
          continue;
        }
        if (kind === 'directory') {
          walk(path, [...parts, decoded]);
          continue;
        }
        if (resolve(path) === inbox) continue;
        const name = canonicalName([...parts, decoded]);
        if (isInbox(name)) continue;
        let mbox: boolean;
        try {
          mbox = known(name) || startsAsMbox(path);
        } catch (err) {
          // Replaced by a link or FIFO since the listing, or unreadable.
          this.warnOnce(path, `${(err as Error).message}; skipped`, warn);
          continue;
        }
        if (!mbox) {
          this.warnOnce(path, `${path} is not an mbox file (it does not start with a "From " line); left alone, not a mailbox`, warn);
          continue;
        }
        out.push({ name, path });
      }
    };
    walk(this.location.root, []);
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}
