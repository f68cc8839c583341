/**
 * Watches users' mail with chokidar and turns what it sees into hints: a Maildir `new/` that
 * changed is new mail (high priority), a `cur/` that changed is a flag change or an expunge
 * (low), a folder made or removed is low; an mbox file that changed is taken for new mail. The
 * hints only queue the user; the sync finds out what really changed, and the periodic check
 * catches whatever a watcher misses.
 *
 * Message files are never tracked one by one: chokidar watches the directories (one inotify
 * watch each) and reports a change in `cur/` or `new/` as a raw event of that directory, so its
 * memory is a few entries per folder, not one per message. At most `limit` users are watched;
 * the others are left to the periodic check.
 */
import { FSWatcher } from 'chokidar';
import { existsSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { WatchTarget } from './watch-target.js';

export type Hint = 'high' | 'low';

const MESSAGE_DIRS = new Set(['cur', 'new', 'tmp']);
/** Files Dovecot and mailferry keep beside a Maildir's folders (checked before chokidar stats them). */
const MAILDIR_OWN_FILES = /^(dovecot[.-]|mailferry[.-]|subscriptions$|maildirfolder$|courierimap)/;

function maildirIgnored(roots: Set<string>) {
  return (path: string, stats?: Stats): boolean => {
    if (roots.has(path)) return false;
    const base = basename(path);
    if (MESSAGE_DIRS.has(basename(dirname(path)))) return true;
    if (base === 'tmp' || MAILDIR_OWN_FILES.test(base)) return true;
    return stats !== undefined && !stats.isDirectory();
  };
}

function mboxIgnored(roots: Set<string>) {
  return (path: string): boolean => {
    if (roots.has(path)) return false;
    const base = basename(path);
    return base.startsWith('.') || base.endsWith('.lock');
  };
}

export class MailWatcher {
  private readonly watchers = new Map<string, FSWatcher[]>();
  /** What each user's watch covers, and what did not exist yet when it began. */
  private readonly targets = new Map<string, WatchTarget[]>();
  private readonly missing = new Map<string, WatchTarget[]>();

  constructor(
    private limit: number,
    private readonly onHint: (user: string, hint: Hint) => void,
    private readonly onFailure: (user: string, error: Error) => void,
  ) {}

  get size(): number {
    return this.watchers.size;
  }

  get capacity(): number {
    return this.limit;
  }

  setLimit(limit: number): void {
    this.limit = limit;
  }

  has(user: string): boolean {
    return this.watchers.has(user);
  }

  /**
   * Starts watching `user`'s mail; false when the limit is reached (or there is nothing to
   * watch). Paths that do not exist yet (a replica before its first sync) are left out: chokidar
   * would watch their parent for them, and a parent shared by every user's replica, re-read on
   * each change, costs every watcher a stat of every user's entry. `refresh` adds them later.
   */
  watch(user: string, targets: readonly WatchTarget[]): boolean {
    if (this.watchers.has(user)) return true;
    if (this.watchers.size >= this.limit) return false;
    const missing = targets.filter((t) => !existsSync(t.root) || (t.inbox !== undefined && !existsSync(t.inbox)));
    targets = targets.filter((t) => !missing.includes(t));
    if (targets.length === 0) return false;
    if (missing.length > 0) this.missing.set(user, missing);
    // One watcher a user, so each has its own ignore rule and a failing user goes alone.
    const maildirs = targets.filter((t) => t.kind === 'maildir');
    const mboxes = targets.filter((t) => t.kind === 'mbox');
    const watchers: FSWatcher[] = [];
    const common = { ignoreInitial: true, followSymlinks: false, ignorePermissionErrors: true, depth: 40, atomic: false } as const;
    if (maildirs.length > 0) {
      const paths = maildirs.flatMap((t) => [t.root, ...(t.inbox ? [t.inbox] : [])]);
      const w = new FSWatcher({ ...common, ignored: maildirIgnored(new Set(paths)) });
      w.on('raw', (_event, _path, details: unknown) => {
        const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
        const dir = typeof watched === 'string' ? basename(watched) : '';
        if (dir === 'new') this.onHint(user, 'high');
        else if (dir === 'cur') this.onHint(user, 'low');
      });
      w.on('addDir', () => this.onHint(user, 'low'));
      w.on('unlinkDir', () => this.onHint(user, 'low'));
      w.add(paths);
      watchers.push(w);
    }
    if (mboxes.length > 0) {
      const paths = mboxes.flatMap((t) => [t.root, ...(t.inbox ? [t.inbox] : [])]);
      const w = new FSWatcher({ ...common, ignored: mboxIgnored(new Set(paths)) });
      for (const ev of ['add', 'change', 'unlink'] as const) w.on(ev, () => this.onHint(user, 'high'));
      for (const ev of ['addDir', 'unlinkDir'] as const) w.on(ev, () => this.onHint(user, 'low'));
      w.add(paths);
      watchers.push(w);
    }
    for (const w of watchers) {
      w.on('error', (err: unknown) => {
        // Out of inotify watches, a directory gone unreadable: this user falls back to the periodic check.
        void this.unwatch(user);
        this.onFailure(user, err instanceof Error ? err : new Error(String(err)));
      });
    }
    this.watchers.set(user, watchers);
    this.targets.set(user, [...targets]);
    return true;
  }

  /** Watches what was missing when `user`'s watch began, if it exists now (after a first sync). */
  async refresh(user: string): Promise<void> {
    const missing = this.missing.get(user);
    const watched = this.targets.get(user);
    if (missing === undefined || watched === undefined) return;
    if (!missing.some((t) => existsSync(t.root) && (t.inbox === undefined || existsSync(t.inbox)))) return;
    await this.unwatch(user);
    this.watch(user, [...watched, ...missing]);
  }

  async unwatch(user: string): Promise<void> {
    const ws = this.watchers.get(user);
    this.missing.delete(user);
    this.targets.delete(user);
    if (ws === undefined) return;
    this.watchers.delete(user);
    await Promise.all(ws.map((w) => w.close()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.watchers.keys()].map((u) => this.unwatch(u)));
  }
}
