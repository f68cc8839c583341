/**
 * Watches users' mail with chokidar and turns what it sees into hints: a Maildir `new/` that
 * changed is new mail (high priority), a `cur/` that changed is a flag change or an expunge
 * (low), a folder made or removed is low; an mbox file that changed is taken for new mail. The
 * hints only queue the user; the sync finds out what really changed, and the periodic check
 * catches whatever a watcher misses.
 *
 * Message files are never tracked one by one, nor listed: chokidar watches the folder
 * directories (folders made and removed) and leaves `cur/`, `new/` and `tmp/` out, and each
 * folder's `cur/` and `new/` gets one plain inotify watch (node's fs.watch) whose events are the
 * hints. chokidar re-lists a directory that changed and stats every entry in it, so when it
 * watched `cur/` and `new/` each delivery cost a stat of every message of the folder; at 10
 * deliveries a second over 100 users that was most of the daemon's CPU. So memory is a few
 * entries per folder and a change costs no system call. At most `limit` users are watched; the
 * others are left to the periodic check.
 */
import { FSWatcher } from 'chokidar';
import { existsSync, readdirSync, watch, type FSWatcher as DirWatcher, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { MessageChange } from './own-writes.js';
import type { WatchTarget } from './watch-target.js';

export type Hint = 'high' | 'low';

const MESSAGE_DIRS = new Set(['cur', 'new', 'tmp']);
/** Files Dovecot and mailferry keep beside a Maildir's folders (checked before chokidar stats them). */
const MAILDIR_OWN_FILES = /^(dovecot[.-]|mailferry[.-]|subscriptions$|maildirfolder$|courierimap)/;

function maildirIgnored(roots: Set<string>) {
  return (path: string, stats?: Stats): boolean => {
    if (roots.has(path)) return false;
    const base = basename(path);
    if (MESSAGE_DIRS.has(base) || MESSAGE_DIRS.has(basename(dirname(path)))) return true;
    if (MAILDIR_OWN_FILES.test(base)) return true;
    return stats !== undefined && !stats.isDirectory();
  };
}

/** Folder trees are not this deep; a loop made with bind mounts ends here. */
const MAX_DEPTH = 40;

/** Every folder directory of a Maildir tree (the root is INBOX's), found by one readdir each. */
function maildirFolders(root: string): string[] {
  const out: string[] = [];
  const visit = (dir: string, depth: number) => {
    let list;
    try {
      list = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    out.push(dir);
    if (depth >= MAX_DEPTH) return;
    for (const e of list) {
      if (e.isDirectory() && !MESSAGE_DIRS.has(e.name)) visit(join(dir, e.name), depth + 1);
    }
  };
  visit(root, 0);
  return out;
}

/**
 * The inotify watches of one user's `cur/` and `new/` directories: new/ changing is new mail,
 * cur/ changing a flag change or an expunge. A directory not there (yet) is skipped; a watch
 * that cannot be made for want of inotify watches is the user's failure.
 */
class MessageDirWatches {
  private readonly dirs = new Map<string, DirWatcher>();

  constructor(private readonly onHint: (hint: Hint, change: MessageChange) => void, private readonly onError: (error: Error) => void) {}

  get size(): number {
    return this.dirs.size;
  }

  folder(dir: string): void {
    for (const sub of ['new', 'cur'] as const) this.add(join(dir, sub), sub === 'new' ? 'high' : 'low');
  }

  forget(dir: string): void {
    for (const path of [...this.dirs.keys()]) {
      if (path === dir || path.startsWith(`${dir}/`)) {
        this.dirs.get(path)!.close();
        this.dirs.delete(path);
      }
    }
  }

  private add(path: string, hint: Hint): void {
    if (this.dirs.has(path)) return;
    let w: DirWatcher;
    try {
      // The file named, so the daemon can tell a sync's own writes from other changes (own-writes.ts).
      w = watch(path, { persistent: false }, (_event, name) => this.onHint(hint, { dir: path, name: typeof name === 'string' ? name : undefined }));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      // Told after the watch that is being set up is complete, so the failure can undo all of it.
      queueMicrotask(() => this.onError(err as Error));
      return;
    }
    // The directory removed (its folder deleted): chokidar reports the folder; the watch is done.
    w.on('error', () => {
      w.close();
      if (this.dirs.get(path) === w) this.dirs.delete(path);
    });
    this.dirs.set(path, w);
  }

  close(): void {
    for (const w of this.dirs.values()) w.close();
    this.dirs.clear();
  }
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
  private readonly messageDirs = new Map<string, MessageDirWatches>();
  /** What each user's watch covers, and what did not exist yet when it began. */
  private readonly targets = new Map<string, WatchTarget[]>();
  private readonly missing = new Map<string, WatchTarget[]>();

  constructor(
    private limit: number,
    /** `change`: the message file an event of a `cur/` or `new/` named; none for folders and mbox files. */
    private readonly onHint: (user: string, hint: Hint, change?: MessageChange) => void,
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
    let failed = false;
    // Out of inotify watches, a directory gone unreadable: this user falls back to the periodic check.
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      void this.unwatch(user);
      this.onFailure(user, err instanceof Error ? err : new Error(String(err)));
    };
    const common = { ignoreInitial: true, followSymlinks: false, ignorePermissionErrors: true, depth: 40, atomic: false } as const;
    if (maildirs.length > 0) {
      const paths = maildirs.flatMap((t) => [t.root, ...(t.inbox ? [t.inbox] : [])]);
      const dirs = new MessageDirWatches((hint, change) => this.onHint(user, hint, change), (err) => fail(err));
      this.messageDirs.set(user, dirs);
      const w = new FSWatcher({ ...common, ignored: maildirIgnored(new Set(paths)) });
      // A folder's cur/ or new/ made after the folder was seen (mkdir of the folder, then of them).
      w.on('raw', (_event, path: string, details: unknown) => {
        const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
        if (typeof watched === 'string' && (path === 'cur' || path === 'new')) dirs.folder(watched);
      });
      w.on('addDir', (path: string) => {
        for (const f of maildirFolders(path)) dirs.folder(f);
        this.onHint(user, 'low');
      });
      w.on('unlinkDir', (path: string) => {
        dirs.forget(path);
        this.onHint(user, 'low');
      });
      w.add(paths);
      for (const p of paths) for (const f of maildirFolders(p)) dirs.folder(f);
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
    for (const w of watchers) w.on('error', (err: unknown) => fail(err));
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
    this.messageDirs.get(user)?.close();
    this.messageDirs.delete(user);
    if (ws === undefined) return;
    this.watchers.delete(user);
    await Promise.all(ws.map((w) => w.close()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.watchers.keys()].map((u) => this.unwatch(u)));
  }
}
