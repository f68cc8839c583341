/**
 * Deleting a Maildir mailbox removes only what is provably mail or metadata: the message files
 * the change index knows, our own temporary files, Dovecot's files and the folder marker.
 * Anything else (a file a user keeps there, mail delivered after the last scan, a link we
 * refused to follow) stays, and the directory with it, with a warning naming it.
 */
import { readdirSync, renameSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fsError } from '../../model/errors.js';
import { direntKind } from '../safe-fs.js';
import { OWN_TMP_SUFFIX } from './mailbox-files.js';

const MAIL_DIRS = ['cur', 'new', 'tmp'];

/** Dovecot's per-folder files (uidlist, keywords, index, cache, logs, ACL) and its marker. */
function isMetadataFile(name: string): boolean {
  return name === 'maildirfolder' || /^dovecot[.-]/.test(name);
}

function removeIfEmpty(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw err;
  }
}

export interface RemovedMailbox {
  /** What is left, as paths relative to the directory. */
  left: string[];
  /**
   * Mail files nobody had seen (delivered after the last scan): the directory stays a
   * mailbox, without its uidlist, so the next listing finds it as a new folder with that mail.
   */
  mailLeft: boolean;
}

/**
 * Removes a mailbox's own files from `dir`; child folder directories (`keepDirs`) are not
 * touched nor counted. `dir` itself is removed when nothing is left.
 */
export function removeMailboxFiles(dir: string, knownFiles: ReadonlySet<string>, keepDirs: ReadonlySet<string> = new Set()): RemovedMailbox {
  const left: string[] = [];
  let mailLeft = false;
  for (const sub of MAIL_DIRS) {
    let entries;
    try {
      entries = readdirSync(join(dir, sub), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw fsError(err, join(dir, sub));
    }
    for (const e of entries) {
      const rel = `${sub}/${e.name}`;
      const file = direntKind(e) === 'file';
      if (file && (sub === 'tmp' ? e.name.endsWith(OWN_TMP_SUFFIX) : knownFiles.has(rel))) {
        unlinkSync(join(dir, rel));
        continue;
      }
      left.push(rel);
      if (file && sub !== 'tmp') mailLeft = true;
    }
  }
  if (mailLeft) {
    unlinkIfExists(join(dir, 'dovecot-uidlist'));
    return { left, mailLeft };
  }
  for (const sub of MAIL_DIRS) {
    const inSub = left.some((l) => l.startsWith(`${sub}/`));
    if (!inSub) removeIfEmpty(join(dir, sub));
  }
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (MAIL_DIRS.includes(e.name) || keepDirs.has(e.name)) continue;
    if (direntKind(e) === 'file' && isMetadataFile(e.name)) unlinkSync(join(dir, e.name));
    else left.push(e.name);
  }
  if (left.length === 0 && keepDirs.size === 0) removeIfEmpty(dir);
  return { left, mailLeft };
}

function unlinkIfExists(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Deletes a mailbox directory that has no child folders inside it. It is first moved out of
 * sight (as Dovecot does), so a crash mid-delete never leaves half a mailbox listed; when
 * something not ours is left, the rest is moved back under its name.
 */
export function deleteMailboxDir(dir: string, trash: string, knownFiles: ReadonlySet<string>): RemovedMailbox & { where: string } {
  renameSync(dir, trash);
  const removed = removeMailboxFiles(trash, knownFiles);
  if (removed.left.length === 0) return { ...removed, where: dir };
  try {
    renameSync(trash, dir);
    return { ...removed, where: dir };
  } catch {
    // The name was taken again meanwhile: what is left stays in the trash directory, named.
    return { ...removed, where: trash };
  }
}
