/**
 * Whether a directory about to become an mbox destination is someone else's. A typo such as
 * `mbox:~` instead of `mbox:~/mail` must not turn a home directory into a mail tree whose
 * `.ssh` and `notes.txt` the next backup may overwrite or delete.
 */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { direntKind } from '../safe-fs.js';
import { startsAsMbox } from './mbox-file-start.js';
import { isOwnEntry } from './mbox-own-files.js';

/** How many entries are looked at before a tree without an mbox file is taken for foreign. */
const ENTRY_BUDGET = 2000;

/**
 * The first entry under `root` that is neither mail nor Dovecot's or mailferry's own, when the
 * tree holds no mbox file; undefined for an empty tree or a mail tree (whose other files the
 * store then leaves alone). `inbox` is the store's own INBOX file, judged by its scan instead.
 */
export function foreignDestinationEntry(root: string, inbox: string): string | undefined {
  let first: string | undefined;
  let budget = ENTRY_BUDGET;
  const queue = [root];
  const inboxPath = resolve(inbox);
  for (let dir = queue.shift(); dir !== undefined && budget > 0; dir = queue.shift()) {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch {
      continue;
    }
    for (const e of entries) {
      if (--budget < 0) break;
      const path = join(dir, e.name);
      if (isOwnEntry(e.name) || resolve(path) === inboxPath) continue;
      const kind = direntKind(e);
      if (kind === 'directory' && !e.name.startsWith('.')) queue.push(path);
      else if (kind === 'file' && !e.name.startsWith('.') && isMbox(path)) return undefined;
      else if (kind !== 'directory' || e.name.startsWith('.')) first ??= path;
    }
  }
  return first;
}

function isMbox(path: string): boolean {
  try {
    return startsAsMbox(path);
  } catch {
    return false;
  }
}
