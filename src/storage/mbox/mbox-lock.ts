/**
 * Locking an mbox file against Dovecot, Postfix, procmail and mutt: the dotlock FILE.lock,
 * which all of them take before writing (Dovecot's default mbox_write_locks is "dotlock fcntl",
 * Postfix local takes both too).
 *
 * fcntl locks are not taken. Node has no fcntl; the one package offering it (fs-ext) is a
 * native build whose synchronous setlk is broken, and every writer that takes fcntl also takes
 * the dotlock, so writers exclude each other through the dotlock alone. What is not covered: a
 * Dovecot *reader* holds only an fcntl read lock (mbox_read_locks), so it may see a flag
 * rewrite in place happen; full rewrites replace the file by rename, which readers never see
 * half done.
 *
 * Reads take the dotlock too (a scan must not see a delivery half written), except where the
 * directory does not let us create it (a system spool read by its user): then they go unlocked.
 */
import { Dotlock } from '../maildir/dotlock.js';
import { MailferryError } from '../../model/errors.js';
import type { MboxContext } from './mbox-index-sync.js';

export async function withMboxLock<T>(ctx: MboxContext, mode: 'read' | 'write', fn: () => T | Promise<T>): Promise<T> {
  let lock: Dotlock | undefined;
  try {
    lock = await Dotlock.acquire(ctx.path, { timeoutSeconds: ctx.lockTimeoutSeconds, fsync: ctx.fsync });
  } catch (err) {
    const unlockable = err instanceof MailferryError && (err.kind === 'permission' || err.kind === 'notfound');
    if (mode === 'write' || !unlockable) throw err;
  }
  try {
    return await fn();
  } finally {
    lock?.release();
  }
}
