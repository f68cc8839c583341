/**
 * Where the benchmark works: bench/data/ (git-ignored) holds the cached masters, the per-run
 * copies under work/, and finished runs' copies under trash/.
 */
import { chownSync, copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const DATA_DIR = join(import.meta.dirname, 'data');

/**
 * This VM's ext4 runs without a journal, and then ext4 will not reuse an inode freed in the last
 * 60 s (360 s while its inode-table block is dirty) but scans past it (perf: recently_deleted()).
 * After deleting a benchmark's copies, creating files was 4-30x slower for about 5 minutes, and
 * both tools create a file per message in case 1. So every deletion of bench files is stamped,
 * and a run starts measuring only RECENT_DELETE_MS after the last one.
 */
const DELETED_STAMP = join(DATA_DIR, 'last-delete.json');
export const RECENT_DELETE_MS = 370_000;

export function removeTree(path: string): void {
  if (!existsSync(path)) return;
  rmSync(path, { recursive: true, force: true });
  writeFileSync(DELETED_STAMP, JSON.stringify({ at: Date.now(), path }));
}

/**
 * So that back-to-back quick runs need not wait, a finished run's copies are not deleted but
 * moved (a rename, instant) to bench/data/trash/; the trash is emptied, and the 6-minute clock
 * started, only after a full run or every 5th run. Returns what was done, for the log.
 */
export function retireWork(work: string, mode: 'quick' | 'full'): string {
  const trash = join(DATA_DIR, 'trash');
  if (existsSync(work)) {
    mkdirSync(trash, { recursive: true });
    renameSync(work, join(trash, `${new Date().toISOString().replace(/[:.]/g, '-')}-${mode}`));
  }
  const entries = existsSync(trash) ? readdirSync(trash) : [];
  if (entries.length === 0 || (entries.length < 5 && !entries.some((e) => e.endsWith('-full')))) return `kept in bench/data/trash/ (${entries.length} runs)`;
  removeTree(trash);
  return 'deleted (the next run within 6 minutes will wait)';
}

/** Milliseconds until file creation is no longer slowed by our last deletion (0: now). */
export function msUntilDeletionSettled(): number {
  try {
    const { at } = JSON.parse(readFileSync(DELETED_STAMP, 'utf8')) as { at: number };
    return Math.max(0, at + RECENT_DELETE_MS - Date.now());
  } catch {
    return 0;
  }
}

/** Calls fn for every file under dir; isMsg says it is a message (its parent is cur/ or new/). */
export function walk(dir: string, fn: (path: string, isMsg: boolean) => void): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, fn);
    else fn(p, dir.endsWith('/cur') || dir.endsWith('/new'));
  }
}

/**
 * A private working copy of the master: directories and the small metadata files (uidlist,
 * keywords, subscriptions; both tools append to or rewrite them) are real copies, message files
 * are hard links (both tools only ever rename or unlink them, never write them in place). This
 * keeps a 100k copy at ~1 s instead of rewriting 0.5 GB each repetition. `owner` chowns the
 * directories and copied files (doveadm's side runs as nobody).
 */
export function workCopy(master: string, dest: string, owner?: { uid: number; gid: number }): void {
  const copyDir = (from: string, to: string, msgDir: boolean): void => {
    mkdirSync(to);
    if (owner) chownSync(to, owner.uid, owner.gid);
    for (const e of readdirSync(from, { withFileTypes: true })) {
      const a = join(from, e.name), b = join(to, e.name);
      if (e.isDirectory()) copyDir(a, b, e.name === 'cur' || e.name === 'new');
      else if (msgDir) linkSync(a, b);
      else {
        copyFileSync(a, b);
        if (owner) chownSync(b, owner.uid, owner.gid);
      }
    }
  };
  copyDir(master, dest, false);
}

/** Reads every file under dir once, so it is in the page cache. */
export function warmCache(dir: string): void {
  walk(dir, (p) => void readFileSync(p));
}
