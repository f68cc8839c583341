/**
 * Keeping a user's Maildir the user's. An administrator runs mailferry as root over many
 * users' mail; every file or directory it creates or rewrites must end up owned like the
 * directory it lives in, or the user's own Dovecot or MUA can no longer open it.
 */
import { chownSync, fchownSync, statSync } from 'node:fs';

const isRoot = process.getuid?.() === 0;

export interface Owner {
  uid: number;
  gid: number;
}

/** The owner new entries of `dir` must get, or undefined when nothing needs changing. */
export function ownerFor(dir: string): Owner | undefined {
  if (!isRoot) return undefined;
  try {
    const st = statSync(dir);
    return st.uid === 0 && st.gid === 0 ? undefined : { uid: st.uid, gid: st.gid };
  } catch {
    return undefined;
  }
}

export function chownFd(fd: number, owner: Owner | undefined): void {
  if (owner) fchownSync(fd, owner.uid, owner.gid);
}

export function chownPath(path: string, owner: Owner | undefined): void {
  if (owner) chownSync(path, owner.uid, owner.gid);
}
