/**
 * Locking an mbox file against Dovecot, Postfix, procmail and mutt: the dotlock FILE.lock,
 * which all of them take before writing (Dovecot's default mbox_write_locks is "dotlock fcntl",
 * Postfix local takes both too).
 *
 * Writes also take an fcntl write lock (see fcntl-lock.ts): a Dovecot *reader* holds only an
 * fcntl read lock (mbox_read_locks), and must not watch a flag rewrite in place happen. Reads
 * need no fcntl lock: the dotlock already keeps every writer out.
 *
 * Reads take the dotlock too (a scan must not see a delivery half written), except where the
 * directory does not let us create it (a system spool read by its user): then they go unlocked.
 */
import { existsSync, utimesSync } from 'node:fs';
import { Dotlock } from '../maildir/dotlock.js';
import { fcntlLock, type FcntlLock } from './fcntl-lock.js';
import { MailferryError } from '../../model/errors.js';
import type { MboxContext } from './mbox-index-sync.js';

/**
 * A held dotlock is touched this often. Dovecot (and Dotlock) take a lock untouched for two
 * minutes as stale, and a save holds its lock for as long as its source takes to hand over the
 * mail, which may be longer.
 */
export const LOCK_TOUCH_MS = 30_000;

function touch(path: string): void {
  try {
    const now = new Date();
    utimesSync(path, now, now);
  } catch {
    // Removed meanwhile: nothing left to keep fresh.
  }
}

export async function withMboxLock<T>(ctx: MboxContext, mode: 'read' | 'write', fn: () => T | Promise<T>): Promise<T> {
  // This store holds the write lock and is between two of its writes: no one can change the file.
  if (mode === 'read' && ctx.pausedWrites?.has(ctx.path)) return fn();
  let lock: Dotlock | undefined;
  try {
    lock = await Dotlock.acquire(ctx.path, { timeoutSeconds: ctx.lockTimeoutSeconds, fsync: ctx.fsync });
  } catch (err) {
    const unlockable = err instanceof MailferryError && (err.kind === 'permission' || err.kind === 'notfound');
    if (mode === 'write' || !unlockable) throw err;
  }
  let record: FcntlLock | undefined;
  const held = lock;
  const touching = held && setInterval(() => touch(held.lockPath), LOCK_TOUCH_MS);
  touching?.unref();
  try {
    if (mode === 'write' && existsSync(ctx.path)) record = await fcntlLock(ctx.path, 'write', ctx.lockTimeoutSeconds, ctx.warn);
    return await fn();
  } finally {
    clearInterval(touching);
    record?.release();
    lock?.release();
  }
}
