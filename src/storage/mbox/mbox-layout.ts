/**
 * Where each mailbox of an mbox root lives, as Dovecot lays it out: mailbox `A/B` is the file
 * ROOT/A/B (parents are plain directories, so a mailbox holding mail cannot have children),
 * INBOX is its own file (ROOT/inbox unless INBOX= says otherwise), names are modified UTF-7.
 * Hidden entries (Dovecot's `.imap` index directories, `.subscriptions`, mailferry's
 * `.mailferry` index and temp files) and dotlocks are never mailboxes.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { MboxLocation } from '../../config/location.js';
import { usageError } from '../../model/errors.js';
import { canonicalName, isInbox } from '../../model/mailbox-name.js';
import { decodeMutf7, encodeMutf7 } from '../../model/mutf7.js';
import type { MailboxName } from '../store.js';

export const MBOX_SEPARATOR = '/';

export class MboxLayout {
  constructor(readonly location: MboxLocation) {}

  formatName(name: MailboxName): string {
    return name.join(MBOX_SEPARATOR);
  }

  /** The mbox file of a mailbox; rejects names that cannot be files. */
  pathOf(name: MailboxName): string {
    const canonical = canonicalName(name);
    if (isInbox(canonical)) return this.location.inbox;
    for (const part of canonical) {
      if (part === '' || part.includes('/') || part.startsWith('.') || part.includes('\0')) {
        throw usageError(`mailbox name '${this.formatName(canonical)}' cannot be stored in mbox (empty part, '/', a leading '.' or NUL)`);
      }
    }
    return join(this.location.root, ...canonical.map(encodeMutf7));
  }

  /** Every mailbox file under the root except INBOX, with its name. */
  listMailboxFiles(warn: (msg: string) => void): { name: MailboxName; path: string }[] {
    const out: { name: MailboxName; path: string }[] = [];
    const inbox = resolve(this.location.inbox);
    const walk = (dir: string, parts: string[]) => {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (e.name.startsWith('.') || e.name.endsWith('.lock')) continue;
        const path = join(dir, e.name);
        let isDir = e.isDirectory();
        let isFile = e.isFile();
        if (e.isSymbolicLink()) {
          try {
            const st = statSync(path);
            isDir = st.isDirectory();
            isFile = st.isFile();
          } catch {
            continue;
          }
        }
        let decoded: string;
        try {
          decoded = decodeMutf7(e.name);
        } catch {
          warn(`${path}: name is not valid modified UTF-7; skipped`);
          continue;
        }
        if (isDir) walk(path, [...parts, decoded]);
        else if (isFile && resolve(path) !== inbox) {
          const name = canonicalName([...parts, decoded]);
          if (isInbox(name)) continue;
          out.push({ name, path });
        }
      }
    };
    walk(this.location.root, []);
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}
