/**
 * Whether a directory may be used as a Maildir root. A typo (`maildir:~` for `maildir:~/Maildir`)
 * must not make a home directory a mail store whose "folders" (`.ssh`, `.config`, `.git`) a
 * backup then deletes, so a root that holds anything is taken only when it is a Maildir.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MaildirLocation } from '../../config/location.js';
import { fsError } from '../../model/errors.js';
import { INDEX_FILENAME } from '../index/change-index.js';
import { direntKind } from '../safe-fs.js';
import { isMaildir } from './layout.js';

/** Entries only a Maildir root has: the mail directories, Dovecot's files, mailferry's index. */
function isMaildirRootEntry(name: string): boolean {
  return ['cur', 'new', 'tmp', 'subscriptions', 'maildirfolder'].includes(name) || /^dovecot[.-]/.test(name) || name.startsWith(INDEX_FILENAME);
}

/** mailferry's run lock is taken before the store opens: it says nothing about what the root is. */
const RUN_LOCK = /^mailferry-sync\.lock/;

/** The first entry that shows `loc.root` is not a Maildir, or undefined when it is one (or empty). */
export function foreignEntryOf(loc: MaildirLocation): string | undefined {
  let entries;
  try {
    entries = readdirSync(loc.root, { withFileTypes: true });
  } catch (err) {
    throw fsError(err, `Maildir ${loc.root}`);
  }
  if (isMaildir(loc.root)) return undefined;
  const foreign: string[] = [];
  for (const e of entries) {
    if (isMaildirRootEntry(e.name)) return undefined;
    if (RUN_LOCK.test(e.name)) continue;
    // A folder of either layout makes it a Maildir whose INBOX has not been created yet.
    if (direntKind(e) === 'directory' && (loc.layout === 'fs' || e.name.startsWith('.')) && isMaildir(join(loc.root, e.name))) return undefined;
    foreign.push(e.name);
  }
  return foreign.sort()[0];
}
