/**
 * The run lock: every backup and sync holds `mailferry-sync.lock` in the index (or state)
 * directory of both locations, so two runs over one pair never interleave; when they did, each
 * took the other's half-done saves for deletions and mail was lost on both sides.
 */
import { existsSync, mkdirSync, readFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { registerCleanup } from '../model/cleanup.js';
import { fsError, MailferryError, tempError } from '../model/errors.js';
import { Dotlock } from '../storage/maildir/dotlock.js';

export const RUN_LOCK_NAME = 'mailferry-sync';

/** Seconds to wait for another run on the same pair when neither -l nor lock_timeout says otherwise. */
export const DEFAULT_RUN_LOCK_SECONDS = 30;

/** Dotlocks untouched for two minutes count as stale; a long run keeps its own fresh. */
const REFRESH_MS = 30_000;

export interface RunLockPlace {
  dir: string;
  /** The directory is mailferry's own (an index or state directory), so it may be created to hold the lock. */
  mayCreate: boolean;
}

function holderOf(lockPath: string): string {
  try {
    const [pid, host] = readFileSync(lockPath, 'utf8').trim().split(':');
    if (pid && host) return ` by process ${pid} on ${host}`;
  } catch {
    // gone meanwhile, or unreadable: the holder is unknown
  }
  return '';
}

async function acquireOne(dir: string, timeoutSeconds: number): Promise<Dotlock> {
  const target = join(dir, RUN_LOCK_NAME);
  try {
    return await Dotlock.acquire(target, { timeoutSeconds, fsync: false });
  } catch (err) {
    if (err instanceof MailferryError && err.kind === 'tempfail') {
      const lockPath = `${target}.lock`;
      throw tempError(`another run on this pair holds ${lockPath}${holderOf(lockPath)}; gave up after ${timeoutSeconds} s (-l SECS waits longer)`, err);
    }
    throw err;
  }
}

/** Takes the run lock in every place (in one order, so two runs cannot deadlock); returns its release. */
export async function acquireRunLocks(places: readonly RunLockPlace[], timeoutSeconds: number): Promise<() => void> {
  const held: Dotlock[] = [];
  const release = () => {
    clearInterval(refresh);
    unregister();
    for (const l of held.splice(0)) l.release();
  };
  const refresh = setInterval(() => {
    const now = new Date();
    for (const l of held) {
      try {
        utimesSync(l.lockPath, now, now);
      } catch {
        // removed under us; the run goes on, as a Dovecot dotlock holder would
      }
    }
  }, REFRESH_MS);
  refresh.unref();
  const unregister = registerCleanup(release);
  const dirs = new Map<string, boolean>();
  for (const p of places) dirs.set(p.dir, (dirs.get(p.dir) ?? false) || p.mayCreate);
  try {
    for (const [dir, mayCreate] of [...dirs].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      if (!existsSync(dir)) {
        // A location that does not exist yet has nothing to protect; the other side's lock still excludes.
        if (!mayCreate) continue;
        try {
          mkdirSync(dir, { recursive: true });
        } catch (err) {
          throw fsError(err, `lock directory ${dir}`);
        }
      }
      held.push(await acquireOne(dir, timeoutSeconds));
    }
  } catch (err) {
    release();
    throw err;
  }
  return release;
}
