/**
 * Creating a file that must be new: never opened through a link planted at its name, never
 * truncating someone else's file. O_EXCL fails on any existing entry, links included.
 */
import { constants, openSync, unlinkSync } from 'node:fs';

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Opens `path` as a new file for writing. An entry already there is a leftover under a name
 * only this process uses (a temp file of the same pid): it is unlinked (a link goes, not what
 * it points to) and the file created again.
 */
export function createNewFileSync(path: string, mode: number): number {
  try {
    return openSync(path, CREATE_FLAGS, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  unlinkSync(path);
  return openSync(path, CREATE_FLAGS, mode);
}
