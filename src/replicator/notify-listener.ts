/**
 * The replicator's ear for Dovecot 2.3: the socket and the fifo its replication plugin writes
 * to (notify-protocol.ts has the lines), so a Dovecot with `mail_plugins = notify replication`
 * feeds this replicator in place of its own aggregator and replicator.
 *
 * - The fifo (`<socket>-fifo`, as the plugin finds `replication-notify-fifo` beside
 *   `replication-notify`) is opened read-write and non-blocking, as Dovecot's master opens it:
 *   with a writer of its own it never reads EOF when the last mail process closes, and no open
 *   or read ever waits. Should it end anyway, it is opened again.
 * - On the socket, a connection whose first line is `VERSION\treplicator-notify\t1\t0` speaks
 *   the aggregator's dialect (so the aggregator's `replicator_host` may name this socket); any
 *   other speaks the plugin's.
 * - Changes are gathered per user for a moment and handed to the daemon one per user, so a
 *   flood of lines is a handful of queue writes; a sync request goes to the queue at once and
 *   is answered when a sync of that user that started after it ends (`+` when it succeeded),
 *   or with `-` after `syncAnswerMs`. A user the replicator does not serve is answered `-` and
 *   named in the log, never a crash. With a queue shared by several replicators the sync may be
 *   another's: the queue is asked (`pollMs`) whether a sync that began after the request succeeded.
 * - Bounded: connections, line length, users waiting to be handed over, sync requests waiting.
 *   A bad line closes its connection (as Dovecot's aggregator does) and is logged; on the fifo
 *   it is skipped. Log lines about bad input are limited, so a hostile writer cannot fill the log.
 * - The socket and the fifo belong to the configured user (and group, mode 0660; else 0600), as
 *   Dovecot's `unix_listener { user = vmail }` makes them: only Dovecot's mail processes write.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, unlinkSync } from 'node:fs';
import { connect, createServer, Socket, type Server } from 'node:net';
import { dirname } from 'node:path';
import { configError, fsError, MailferryError, tempError } from '../model/errors.js';
import { shownUserName } from '../server/user-name.js';
import {
  decodeHandshake,
  decodeLine,
  encodeSyncReply,
  isHandshake,
  LineSplitter,
  NotifyProtocolError,
  TOO_LONG,
  MAX_NOTIFY_LINE,
  type NotifyDialect,
  type NotifyRequest,
} from './notify-protocol.js';
import { higherPriority, type ReplicationPriority } from './replication-priority.js';
import type { SyncReport } from './sync-report.js';

/** What the listener feeds: the daemon. */
export interface NotifyTarget {
  /** Queues `user`; false when the replicator does not serve that user. */
  notify(user: string, priority: ReplicationPriority): Promise<boolean>;
  /** Whether a sync of `user` runs now (its end does not answer a request that came after its start). */
  isSyncing(user: string): boolean;
  on(event: 'synced', listener: (report: SyncReport) => void): unknown;
  off(event: 'synced', listener: (report: SyncReport) => void): unknown;
  /**
   * The queue's record of these users' syncs, for a queue other processes also work from: their
   * syncs end there, not in this process's `synced` events. `claimedAt` is set while one runs.
   */
  syncHistory?(users: string[]): Promise<Map<string, SyncHistory>>;
}

export interface SyncHistory {
  /** When the last successful sync was claimed. */
  lastFastSync?: number;
  claimedAt?: number;
}

export interface NotifyListenerOptions {
  socketPath: string;
  /** Default `<socketPath>-fifo`; null for none. */
  fifoPath?: string | null;
  /** Owner of both; undefined: the process's own. A group makes the mode 0660. */
  uid?: number;
  gid?: number;
  log(line: string): void;
  maxConnections?: number;
  /** A sync request not answered by then is answered `-`. */
  syncAnswerMs?: number;
  /** How long changes gather before they go to the queue. */
  gatherMs?: number;
  /** Users with changes waiting to go to the queue, at most. */
  maxGathered?: number;
  /** Sync requests waiting for their answer, at most (a plugin holds one; the aggregator many). */
  maxWaiting?: number;
  /** How often the socket's and the fifo's paths are checked for being still this listener's. */
  guardMs?: number;
  /**
   * With a queue shared by several replicators: how often the queue is asked whether another
   * process synced a waiting request's user (undefined: never, every sync is this process's).
   */
  pollMs?: number;
}

export const FIFO_SUFFIX = '-fifo';

interface Waiter {
  user: string;
  /** A sync was running when the request came: its end is not the answer. */
  skipRunning: boolean;
  /** The queue's record just after the request was queued, when it is polled. */
  seen?: SyncHistory;
  answer(ok: boolean): void;
}

/**
 * Whether the queue's record shows a successful sync that began after the request: the last
 * success moved on from the one seen then, and past the sync that was running then, if any.
 * Only claim times are compared, never this host's clock against another's.
 */
export function syncedAfter(seen: SyncHistory, now: SyncHistory): boolean {
  if (now.lastFastSync === undefined || now.lastFastSync === seen.lastFastSync) return false;
  return seen.claimedAt === undefined || now.lastFastSync > seen.claimedAt;
}

/** Lets `burst` complaints of a kind into the log per interval and counts what it kept out. */
class LogLimiter {
  private readonly last = new Map<string, { at: number; said: number; held: number }>();
  constructor(
    private readonly log: (line: string) => void,
    private readonly everyMs = 10_000,
    private readonly burst = 10,
  ) {}

  say(kind: string, line: string): void {
    const now = Date.now();
    let seen = this.last.get(kind);
    if (seen === undefined || now - seen.at >= this.everyMs) {
      const held = seen?.held ?? 0;
      if (this.last.size > 1000) this.last.clear();
      seen = { at: now, said: 0, held: 0 };
      this.last.set(kind, seen);
      if (held > 0) line = `${line} (and ${held} more like it not logged)`;
    }
    if (seen.said >= this.burst) {
      seen.held++;
      return;
    }
    seen.said++;
    this.log(line);
  }
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function existing(path: string, what: string) {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsError(err, what);
  }
}

export class NotifyListener {
  private readonly conns = new Set<Socket>();
  private readonly gathered = new Map<string, ReplicationPriority>();
  private gatherTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly waiters = new Set<Waiter>();
  private fifo: Socket | undefined;
  private fifoRetry: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private guardTimer: NodeJS.Timeout | undefined;
  /** The inodes this listener made or opened, to notice another taking the paths over. */
  private socketIno: number | undefined;
  private fifoIno: number | undefined;
  private closed = false;
  private readonly limiter: LogLimiter;
  private readonly onSynced = (r: SyncReport) => this.synced(r);
  private readonly max: Required<Pick<NotifyListenerOptions, 'maxConnections' | 'syncAnswerMs' | 'gatherMs' | 'maxGathered' | 'maxWaiting'>>;

  private constructor(
    private readonly target: NotifyTarget,
    private readonly opts: NotifyListenerOptions,
    private readonly server: Server,
    readonly fifoPath: string | undefined,
  ) {
    this.limiter = new LogLimiter(opts.log);
    this.max = {
      maxConnections: opts.maxConnections ?? 256,
      syncAnswerMs: opts.syncAnswerMs ?? 60_000,
      gatherMs: opts.gatherMs ?? 50,
      maxGathered: opts.maxGathered ?? 100_000,
      maxWaiting: opts.maxWaiting ?? 10_000,
    };
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  static async listen(target: NotifyTarget, opts: NotifyListenerOptions): Promise<NotifyListener> {
    const path = opts.socketPath;
    const what = `replication notify socket ${path}`;
    const fifoPath = opts.fifoPath === null ? undefined : (opts.fifoPath ?? `${path}${FIFO_SUFFIX}`);
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    } catch (err) {
      throw fsError(err, what);
    }
    const found = existing(path, what);
    if (found !== undefined) {
      if (!found.isSocket()) throw configError(`${what} exists and is not a socket; remove it or set another replication_notify_socket`);
      if (await answers(path)) {
        throw tempError(`${what}: something answers there already (another replicator, or Dovecot's aggregator: move its unix_listener replication-notify elsewhere)`);
      }
      unlinkSync(path);
    }
    const mode = opts.gid === undefined ? 0o600 : 0o660;
    const server = createServer({ allowHalfOpen: true });
    const listener = new NotifyListener(target, opts, server, fifoPath);
    server.on('connection', (s) => listener.accept(s));
    // Made unreachable to anyone else from the start: the mode comes after the bind.
    const mask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) => reject(fsError(err, what)));
        server.listen(path, () => resolve());
      });
    } finally {
      process.umask(mask);
    }
    try {
      NotifyListener.own(path, opts, mode, what);
      if (fifoPath !== undefined) NotifyListener.makeFifo(fifoPath, opts, mode);
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
    target.on('synced', listener.onSynced);
    listener.socketIno = lstatSync(path).ino;
    if (fifoPath !== undefined) listener.openFifo();
    listener.guardTimer = setInterval(() => listener.guard(), opts.guardMs ?? 10_000);
    listener.guardTimer.unref();
    return listener;
  }

  /**
   * A Dovecot whose aggregator still has these names makes its own fifo in place of this one
   * (its master removes what is there) and leaves the socket: notices would then go past this
   * replicator without a word. Said in the log, every ten minutes while it lasts.
   */
  private guard(): void {
    const check = (path: string | undefined, ino: number | undefined, what: string) => {
      if (path === undefined || ino === undefined) return;
      let now: number | undefined;
      try {
        now = lstatSync(path).ino;
      } catch {
        now = undefined;
      }
      if (now !== ino) {
        this.guardLimiter.say(what, `replication notify ${what} ${path} is no longer this replicator's (${now === undefined ? 'removed' : 'replaced'}: by Dovecot's aggregator? move its listeners aside); notices through it are not seen`);
      }
    };
    check(this.opts.socketPath, this.socketIno, 'socket');
    check(this.fifoPath, this.fifoIno, 'fifo');
  }

  private readonly guardLimiter = new LogLimiter((l) => this.opts.log(l), 600_000, 1);

  private static own(path: string, opts: NotifyListenerOptions, mode: number, what: string): void {
    try {
      if (opts.uid !== undefined || opts.gid !== undefined) chownSync(path, opts.uid ?? -1, opts.gid ?? -1);
      chmodSync(path, mode);
    } catch (err) {
      throw fsError(err, `${what}: giving it to uid ${opts.uid ?? 'self'}${opts.gid === undefined ? '' : ` gid ${opts.gid}`}`);
    }
  }

  /** A fifo there is kept (mail processes may hold it open); anything else there is refused, never removed. */
  private static makeFifo(path: string, opts: NotifyListenerOptions, mode: number): void {
    const what = `replication notify fifo ${path}`;
    const found = existing(path, what);
    if (found !== undefined && !found.isFIFO()) throw configError(`${what} exists and is not a fifo; remove it or set another replication_notify_socket`);
    if (found === undefined) {
      try {
        // Node has no mkfifo(); coreutils' makes it with the mode asked, whatever the umask.
        execFileSync('mkfifo', ['-m', mode.toString(8), path], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (err) {
        const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
        throw new MailferryError('tempfail', `${what}: mkfifo failed${stderr ? `: ${stderr}` : ''}`);
      }
    }
    NotifyListener.own(path, opts, mode, what);
  }

  private openFifo(): void {
    if (this.closed || this.fifoPath === undefined) return;
    let fd: number;
    try {
      fd = openSync(this.fifoPath, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch (err) {
      this.limiter.say('fifo-open', `replication notify fifo ${this.fifoPath}: ${(err as Error).message}; trying again in 5 s`);
      this.fifoRetry = setTimeout(() => this.openFifo(), 5000);
      return;
    }
    let fifo: Socket;
    try {
      this.fifoIno = fstatSync(fd).ino;
      fifo = new Socket({ fd, readable: true, writable: false });
    } catch (err) {
      closeSync(fd);
      this.limiter.say('fifo-open', `replication notify fifo ${this.fifoPath}: ${(err as Error).message}; trying again in 5 s`);
      this.fifoRetry = setTimeout(() => this.openFifo(), 5000);
      return;
    }
    this.fifo = fifo;
    const splitter = new LineSplitter();
    fifo.on('data', (chunk: Buffer) => {
      for (const line of splitter.push(chunk)) {
        if (line === TOO_LONG) {
          this.limiter.say('fifo-long', `replication notify fifo: a line longer than ${MAX_NOTIFY_LINE} bytes, skipped`);
          continue;
        }
        if (line.length === 0) continue;
        try {
          this.take(decodeLine(line, 'plugin'), 'the fifo');
        } catch (err) {
          this.limiter.say('fifo-bad', `replication notify fifo: ${(err as Error).message}; skipped`);
        }
      }
    });
    const reopen = (why: string) => {
      if (this.fifo !== fifo) return;
      this.fifo = undefined;
      fifo.destroy();
      if (this.closed) return;
      this.limiter.say('fifo-end', `replication notify fifo ${this.fifoPath}: ${why}; opening it again`);
      this.fifoRetry = setTimeout(() => this.openFifo(), 100);
    };
    fifo.on('end', () => reopen('ended'));
    fifo.on('error', (err) => reopen(err.message));
  }

  private accept(socket: Socket): void {
    if (this.closed || this.conns.size >= this.max.maxConnections) {
      this.limiter.say('conn-limit', `replication notify socket: ${this.conns.size} connections already (at most ${this.max.maxConnections}); one more refused`);
      socket.destroy();
      return;
    }
    this.conns.add(socket);
    const mine = new Set<Waiter>();
    socket.on('close', () => {
      this.conns.delete(socket);
      // Nobody is left to read these answers.
      for (const w of [...mine]) w.answer(false);
    });
    socket.on('error', () => socket.destroy());
    const splitter = new LineSplitter();
    let dialect: NotifyDialect | undefined;
    const refuse = (why: string) => {
      this.limiter.say('socket-bad', `replication notify socket: ${why}; connection closed`);
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      for (const line of splitter.push(chunk)) {
        if (socket.destroyed) return;
        if (line === TOO_LONG) return refuse(`a line longer than ${MAX_NOTIFY_LINE} bytes`);
        try {
          if (dialect === undefined) {
            if (isHandshake(line)) {
              const v = decodeHandshake(line);
              dialect = 'replicator';
              // A lasting connection, made again only when either side restarts: worth a line.
              this.limiter.say('aggregator', `replication notify socket: Dovecot's aggregator connected (replicator-notify ${v.major}.${v.minor})`);
              continue;
            }
            dialect = 'plugin';
          }
          if (line.length === 0) continue;
          const request = decodeLine(line, dialect);
          if (request.priority === 'sync') this.syncRequest(request, socket, mine);
          else this.take(request, 'the socket');
        } catch (err) {
          return refuse(err instanceof NotifyProtocolError ? err.message : `failed: ${String(err)}`);
        }
      }
    });
    // The plugin half-closes after its request on some systems; its answer still goes out.
    socket.on('end', () => {
      if (mine.size === 0) socket.end();
    });
  }

  /** A change: gathered with the user's others, handed over shortly. `sync` from the fifo has nobody to answer. */
  private take(r: NotifyRequest, from: string): void {
    if (r.priority === 'none') return;
    const had = this.gathered.get(r.user);
    if (had === undefined && this.gathered.size >= this.max.maxGathered) {
      this.limiter.say('gather-full', `replication notify: ${this.gathered.size} users already waiting to be queued; a change of user ${shownUserName(r.user)} from ${from} is left to the periodic check`);
      return;
    }
    this.gathered.set(r.user, had === undefined ? r.priority : higherPriority(had, r.priority));
    this.gatherTimer ??= setTimeout(() => {
      this.gatherTimer = undefined;
      this.flushing = this.flushing.then(() => this.flush());
    }, this.max.gatherMs);
  }

  private async flush(): Promise<void> {
    const batch = [...this.gathered];
    this.gathered.clear();
    for (const [user, priority] of batch) {
      try {
        if (!(await this.target.notify(user, priority))) this.unknown(user);
      } catch (err) {
        this.limiter.say('queue', `replication notify: the queue did not take a change of user ${shownUserName(user)}: ${(err as Error).message}`);
      }
    }
  }

  private unknown(user: string): void {
    this.limiter.say(`unknown ${user}`, `replication notify: user ${shownUserName(user)} is not one this replicator serves (no mail_replica, or not in the userdb); ignored`);
  }

  private syncRequest(r: NotifyRequest, socket: Socket, mine: Set<Waiter>): void {
    const reply = (ok: boolean) => {
      if (!socket.destroyed && socket.writable) socket.write(encodeSyncReply(ok, r.id));
      if (socket.readableEnded && mine.size === 0) socket.end();
    };
    if (this.waiters.size >= this.max.maxWaiting) {
      this.limiter.say('waiting-full', `replication notify: ${this.waiters.size} sync requests already waiting; one of user ${shownUserName(r.user)} answered '-' at once`);
      return reply(false);
    }
    let timer: NodeJS.Timeout | undefined;
    const w: Waiter = {
      user: r.user,
      skipRunning: this.target.isSyncing(r.user),
      answer: (ok) => {
        if (!this.waiters.delete(w)) return;
        mine.delete(w);
        clearTimeout(timer);
        reply(ok);
      },
    };
    this.waiters.add(w);
    mine.add(w);
    timer = setTimeout(() => w.answer(false), this.max.syncAnswerMs);
    timer.unref();
    // The shared queue's record is read before the request is queued: read after, it could
    // already hold the very sync the request caused (another replicator takes it at once), and
    // the request would wait for a later one that never comes.
    const polled = this.opts.pollMs !== undefined && this.target.syncHistory !== undefined;
    const seenBefore = polled
      ? this.target.syncHistory!([r.user]).then(
          (history) => history.get(r.user) ?? {},
          (err: unknown) => {
            // This process's own syncs and the bound still answer it.
            this.limiter.say('queue', `replication notify: the queue did not say how user ${shownUserName(r.user)}'s syncs went: ${(err as Error).message}`);
            return undefined;
          },
        )
      : Promise.resolve(undefined);
    seenBefore.then((seen) => this.target.notify(r.user, 'sync').then((known) => ({ known, seen }))).then(
      ({ known, seen }) => {
        if (!known) {
          this.unknown(r.user);
          return w.answer(false);
        }
        if (seen === undefined || !this.waiters.has(w) || this.closed) return;
        w.seen = seen;
        this.pollTimer ??= setTimeout(() => void this.poll(), this.opts.pollMs);
      },
      (err: unknown) => {
        this.limiter.say('queue', `replication notify: the queue did not take a sync request of user ${shownUserName(r.user)}: ${(err as Error)?.message ?? String(err)}`);
        w.answer(false);
      },
    );
  }

  /** Asks the shared queue about every polled request's user at once, while any wait. */
  private async poll(): Promise<void> {
    const polled = [...this.waiters].filter((w) => w.seen !== undefined);
    if (polled.length > 0 && this.target.syncHistory !== undefined) {
      try {
        const history = await this.target.syncHistory([...new Set(polled.map((w) => w.user))]);
        for (const w of polled) {
          const now = history.get(w.user);
          if (now !== undefined && syncedAfter(w.seen!, now)) w.answer(true);
        }
      } catch (err) {
        this.limiter.say('queue', `replication notify: the queue did not say how waiting users' syncs went: ${(err as Error).message}`);
      }
    }
    this.pollTimer = undefined;
    if (!this.closed && [...this.waiters].some((w) => w.seen !== undefined)) this.pollTimer = setTimeout(() => void this.poll(), this.opts.pollMs);
  }

  private synced(report: SyncReport): void {
    for (const w of [...this.waiters]) {
      if (w.user !== report.user) continue;
      if (w.skipRunning) {
        w.skipRunning = false;
        continue;
      }
      // An incomplete sync may have left out the very mailbox the request was about.
      w.answer(report.result === 'ok' || report.result === 'again');
    }
  }

  /** Sync requests waiting for their answer. */
  get waiting(): number {
    return this.waiters.size;
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Stops listening; changes already taken go to the queue, waiting sync requests are answered '-'. The fifo stays. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.target.off('synced', this.onSynced);
    clearTimeout(this.fifoRetry);
    clearTimeout(this.pollTimer);
    clearInterval(this.guardTimer);
    this.fifo?.destroy();
    this.fifo = undefined;
    if (this.gatherTimer) {
      clearTimeout(this.gatherTimer);
      this.gatherTimer = undefined;
      this.flushing = this.flushing.then(() => this.flush());
    }
    await this.flushing;
    for (const w of [...this.waiters]) w.answer(false);
    for (const c of this.conns) c.end();
    const closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
    setTimeout(() => {
      for (const c of this.conns) c.destroy();
    }, 200).unref();
    await closing;
    try {
      unlinkSync(this.opts.socketPath);
    } catch {
      // node removes it on close
    }
  }
}
