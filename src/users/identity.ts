/**
 * Taking a user's uid and gid for the length of their run, in a worker process started as
 * root: the effective ids change (files are created as that user, and access is checked as
 * that user), the real ids stay root so the worker can take the next user's afterwards. A
 * worker runs one user at a time, so no two users ever share a moment of one identity.
 */
import { MailferryError } from '../model/errors.js';

export interface Identity {
  uid: number;
  gid: number;
}

export function runningAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Becomes `who` (when root) and returns the function that turns back; checks otherwise. */
export function becomeUser(user: string, who: Identity | undefined): () => void {
  if (!runningAsRoot()) {
    const mine = process.geteuid?.();
    if (who !== undefined && who.uid !== mine) {
      throw new MailferryError('permission', `user ${user}: the mail belongs to uid ${who.uid} and mailferry runs as uid ${mine}: run as root or as that user`);
    }
    return () => {};
  }
  if (who === undefined) {
    throw new MailferryError('permission', `user ${user}: no uid known; as root every user's mail is handled with that user's uid (set uid in the userdb, or mail_uid)`);
  }
  const groups = process.getgroups!();
  process.setgroups!([who.gid]);
  process.setegid!(who.gid);
  process.seteuid!(who.uid);
  return () => {
    process.seteuid!(0);
    process.setegid!(0);
    process.setgroups!(groups);
  };
}
