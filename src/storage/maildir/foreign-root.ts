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

/** Files a Maildir root holds besides its mail: Dovecot's, mailferry's (its index, the run lock), and the mail directories. */
function isMaildirRootEntry(name: string): boolean {
  return ['cur', 'new', 'tmp', 'subscriptions', 'maildirfolder'].includes(name) || /^dovecot[.-]/.test(name) || name.startsWith(INDEX_FILENAME) || name.startsWith('mailferry-');
}

/** The first entry that shows `loc.root` is not a Maildir, or undefined when it is one (or empty). */
export function foreignEntryOf(loc: MaildirLocation): string | undefined {
  let entries;
  try {
    entries = readdirSync(loc.root, { withFileTypes: true });
  } catch (err) {
    throw fsError(err, `Maildir ${loc.root}`);
  }
  if (entries.length === 0 || isMaildir(loc.root)) return undefined;
  const foreign: string[] = [];
  for (const e of entries) {
    if (isMaildirRootEntry(e.name)) return undefined;
    // A folder of either layout makes it a Maildir whose INBOX has not been created yet.
    if (direntKind(e) === 'directory' && (loc.layout === 'fs' || e.name.startsWith('.')) && isMaildir(join(loc.root, e.name))) return undefined;
    foreign.push(e.name);
  }
  return foreign.sort()[0];
}
