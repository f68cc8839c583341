/**
 * When a Maildir message's flags last changed. Flags live in the file name, so every flag
 * change is a rename, and a rename sets the file's change time (ctime); unlike the mtime, which
 * savers set to the received date, nobody can set the ctime back. Whatever else touched the
 * inode since (a copy, a hard link made by a renumbering) also counts as a change, which errs
 * towards the copy made later, as a user comparing the two would.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';

/** `files`: UID -> path relative to the mailbox directory. A file gone since is left out. */
export function flagChangeTimes(dir: string, files: ReadonlyMap<number, string>): Map<number, number> {
  const times = new Map<number, number>();
  for (const [uid, file] of files) {
    let st;
    try {
      // lstat: never follows a link put in the message's place.
      st = lstatSync(join(dir, file), { throwIfNoEntry: false });
    } catch {
      st = undefined;
    }
    if (st?.isFile()) times.set(uid, st.ctimeMs);
  }
  return times;
}
