/**
 * Masters derived from a data set's master for the cross-store cases, made once per series
 * under its work directory, by hard links (message files) and copies (metadata).
 */
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeMutf7 } from '../src/model/mutf7.js';
import { mailboxDirs } from './maildir-files.js';
import { workCopy } from './workspace.js';

/**
 * A Maildir++ tree holding only `mailboxes` (names as tally() keys them: 'INBOX', 'Drafts',
 * 'Priv&AOk-'), for the quick run, whose time budget does not fit the whole corpus through
 * four more cases. Subscriptions are cut down to what is kept.
 */
export function partialMaster(master: string, dest: string, mailboxes: string[]): void {
  mkdirSync(dest, { recursive: true });
  const keep = new Set(mailboxes);
  for (const e of readdirSync(master, { withFileTypes: true })) {
    const from = join(master, e.name), to = join(dest, e.name);
    if (e.isDirectory()) {
      if (e.name === 'cur' || e.name === 'new') {
        mkdirSync(to);
        for (const f of readdirSync(from)) linkSync(join(from, f), join(to, f));
      } else if (e.name === 'tmp') mkdirSync(to);
      else if (keep.has(e.name.slice(1))) workCopy(from, to);
    } else copyFileSync(from, to);
  }
  const subs = join(dest, 'subscriptions');
  if (existsSync(subs)) {
    // Dovecot's subscriptions file: a version line, then one name per line with tabs between levels.
    const lines = readFileSync(subs, 'utf8').split('\n');
    writeFileSync(subs, lines.filter((l, i) => i === 0 || l === '' || keep.has(encodeMutf7(l.split('\t').join('.')))).join('\n'));
  }
}

/**
 * mbox cannot hold a mailbox that has both mail and children ("Archive" is a file, so there can
 * be no "Archive/2002"), and both tools refuse it. So case 4 converts a copy of the master in
 * which every child of a mailbox is renamed into a sibling ("Archive.2002" -> "Archive-2002"):
 * the same messages in as many mailboxes. Returns the renames, for the report.
 */
export function mboxableMaster(master: string, dest: string): string[] {
  workCopy(master, dest);
  const names = [...mailboxDirs(dest).keys()];
  const renamed: string[] = [];
  for (const n of names) {
    const parts = n.split('.');
    const hasMailboxParent = parts.some((_, i) => i > 0 && names.includes(parts.slice(0, i).join('.')));
    if (n === 'INBOX' || !hasMailboxParent) continue;
    const flat = parts.join('-');
    renameSync(join(dest, `.${n}`), join(dest, `.${flat}`));
    renamed.push(`${n} -> ${flat}`);
  }
  return renamed;
}
