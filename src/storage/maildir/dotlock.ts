/**
 * Dovecot-compatible dotlocks: `<file>.lock`, created exclusively, holding `pid:host`.
 * Dovecot writes a file's new content into its lock and renames the lock over the file,
 * so a reader sees either the old or the new version, never half of one; {@link Dotlock.replace}
 * does the same.
 */
import { closeSync, fchmodSync, fchownSync, fsyncSync, lstatSync, openSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { createNewFileSync, writeWholeSync } from '../safe-fs.js';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { chownFd, ownerFor } from './ownership.js';
import { fsError, tempError } from '../../model/errors.js';
import { processAlive } from '../process-alive.js';

/** Dovecot treats a dotlock untouched for two minutes as stale. */
const STALE_MS = 120_000;
/** A lock without a readable `pid:host` cannot be checked; give its writer a few seconds. */
const UNREADABLE_STALE_MS = 5_000;

export interface DotlockOptions {
  /** Seconds to wait for the lock before giving up with a temporary failure. */
  timeoutSeconds?: number;
  fsync?: boolean;
}

function isStale(lockPath: string, host: string): boolean {
  let stat;
  try {
    stat = statSync(lockPath);
  } catch {
    return false;
  }
  const age = Date.now() - stat.mtimeMs;
  if (age > STALE_MS) return true;
  try {
    const [pidText, lockHost] = readFileSync(lockPath, 'utf8').trim().split(':');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 0 || lockHost === undefined) {
      // Empty or garbled: its writer died between creating and filling it.
      return age > UNREADABLE_STALE_MS;
    }
    return lockHost === host && !processAlive(pid);
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class Dotlock {
  readonly target: string;
  readonly lockPath: string;
  private fd: number | undefined;
  private readonly fsync: boolean;
  private held = true;

  private constructor(target: string, fd: number, fsync: boolean) {
    this.target = target;
    this.lockPath = `${target}.lock`;
    this.fd = fd;
    this.fsync = fsync;
  }

  static async acquire(target: string, options: DotlockOptions = {}): Promise<Dotlock> {
    const lockPath = `${target}.lock`;
    const host = hostname();
    const deadline = Date.now() + (options.timeoutSeconds ?? 30) * 1000;
    let delay = 5;
    for (;;) {
      try {
        const fd = openSync(lockPath, 'wx', 0o600);
        writeWholeSync(fd, `${process.pid}:${host}`);
        return new Dotlock(target, fd, options.fsync ?? true);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(err, `lock ${lockPath}`);
      }
      if (isStale(lockPath, host)) {
        try {
          unlinkSync(lockPath);
        } catch {
          // Someone else removed or took it meanwhile; retry.
        }
        continue;
      }
      if (Date.now() >= deadline) {
        throw tempError(`timed out waiting for lock ${lockPath} (held by another process)`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 200);
    }
  }

  /**
   * Writes `content` as the target's new version, atomically, while the lock is held. The
   * new version goes to a temporary file beside it, not into the lock itself: a lock that
   * keeps saying `pid:host` until it is removed can always be proven stale after a crash.
   */
  replace(content: string | Buffer): void {
    if (!this.held) throw new Error(`lock ${this.lockPath} already released`);
    const tmp = `${this.target}.${process.pid}.tmp`;
    try {
      const buf = typeof content === 'string' ? Buffer.from(content) : content;
      const wfd = createNewFileSync(tmp);
      try {
        // The new version takes the old one's owner and mode, so a root run leaves the file usable by its user.
        let previous;
        try {
          previous = lstatSync(this.target);
        } catch {
          previous = undefined;
        }
        if (previous) {
          fchmodSync(wfd, previous.mode & 0o7777);
          if (process.getuid?.() === 0) fchownSync(wfd, previous.uid, previous.gid);
        } else {
          chownFd(wfd, ownerFor(dirname(this.target)));
        }
        writeWholeSync(wfd, buf);
        if (this.fsync) fsyncSync(wfd);
      } finally {
        closeSync(wfd);
      }
      renameSync(tmp, this.target);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // never created
      }
      this.release();
      throw fsError(err, `writing ${this.target}`);
    }
    this.release();
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    try {
      unlinkSync(this.lockPath);
    } catch {
      // Removed as stale by someone else.
    }
  }
}
