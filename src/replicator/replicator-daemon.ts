/**
 * `mailferry replicator`: keeps every user replicated to their mail_replica, as Dovecot's
 * replicator did, on one machine with nothing but its own files.
 *
 * - The queue (replication-queue.ts) says who is due; up to replication_max_conns workers run
 *   one user's two-way stateful `sync` each, the same run `sync -u USER -d` does.
 * - The watcher (mail-watcher.ts) turns changes in users' mail into hints that queue them (new
 *   mail high, flag changes low); the periodic check fingerprints every user's mail and queues
 *   those whose fingerprint moved, catching what the watcher missed and the users beyond the
 *   watch limit; IMAP and far sources are queued on each check.
 * - The control socket answers `replicator status|replicate|add|remove|dsync-status`.
 * - stop(): no new syncs; running ones may finish within replication_stop_timeout, then their
 *   workers are ended and their claims given back, so they run again after a restart.
 * - reload() (SIGHUP): configuration and userdb read again, users joined and left.
 *
 * - With replication_notify_socket, Dovecot 2.3's replication plugin (or its aggregator) tells
 *   it of changes through that socket and the fifo beside it (notify-listener.ts).
 *
 * - A change the watcher sees while a user's sync runs is not queued when the pair agrees on every
 *   message such changes name once the sync ended: those were the sync's own writes into the
 *   watched Maildirs, and another sync would find nothing to do (own-writes.ts).
 *
 * Listeners may follow `synced` (every sync, as logged) and `hint` events; `notify` is the way
 * in for other sources of changes (such as Dovecot's replication notify socket).
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Settings } from '../config/settings.js';
import { openUserDb } from '../config/userdb/open-userdb.js';
import { resolveGid, resolveUid } from '../config/userdb/system-accounts.js';
import type { UserDb } from '../config/userdb/userdb.js';
import { configError, fsError, MailferryError } from '../model/errors.js';
import type { UserRunSpec } from '../users/user-run-spec.js';
import { isMask, maskMatcher, selectUsers, type UserSelection } from '../users/user-selection.js';
import type { ControlReply, ControlRequest } from './control-protocol.js';
import { ControlServer } from './control-server.js';
import { acquireDaemonLock } from './daemon-lock.js';
import { FingerprintStore } from './fingerprint-store.js';
import { fingerprint } from './mail-fingerprint.js';
import { MailWatcher } from './mail-watcher.js';
import { pairAgreesOn, type MessageChange } from './own-writes.js';
import { backoffDelay } from './next-sync-time.js';
import { NotifyListener, type SyncHistory } from './notify-listener.js';
import { isSharedQueue, openReplicationQueue, queueTimingOf } from './open-replication-queue.js';
import { isRun, loadReplicaUsers, replicaRun, watchPlanOf } from './replica-users.js';
import { higherPriority, type ReplicationPriority } from './replication-priority.js';
import type { ReplicationQueue, SyncClaim } from './replication-queue.js';
import { replicatorStateDir } from './replicator-paths.js';
import { replicatorSettingsOf } from './replicator-settings.js';
import { SyncWorkerPool } from './sync-worker-pool.js';
import { outcomeOf, reportLine, type SyncReport } from './sync-report.js';
import type { WatchTarget } from './watch-target.js';

export interface ReplicatorOptions {
  settings: Settings;
  /** The configuration read again, for SIGHUP; throws as loading it does. */
  loadSettings(): Settings;
  selection: UserSelection;
  socketPath: string;
  verbose: boolean;
  debug: boolean;
  /** One line of the log (stderr, the journal). */
  log(line: string): void;
}

interface WatchPlan {
  targets: WatchTarget[];
  /** The source is not on this machine (IMAP, remote): queued on every check. */
  polled: boolean;
}

/** A user's hints go to the queue once its mail was quiet this long, or this long after the first. */
const HINT_QUIET_MS = 100;
const HINT_MAX_WAIT_MS = 1000;
const HINT_TICK_MS = 50;
/** The scheduler wakes at least this often, whatever the queue says. */
const MAX_SLEEP_MS = 60_000;
/** Users fingerprinted at once by the periodic check. */
const CHECK_PARALLEL = 4;
/** Message files kept per running sync for judging its own writes; beyond, its changes are simply queued. */
const MAX_CHANGES_KEPT = 10_000;

/** The changes seen while a user's sync runs, judged when it ends (own-writes.ts). */
interface DuringSync {
  priority: ReplicationPriority;
  first: number | undefined;
  last: number;
  changes: MessageChange[];
  /** A change that names no message file, came after the sync's end, or one too many: the user is queued again. */
  unjudged: boolean;
  ended: boolean;
}

interface LookUpFailure {
  gone: boolean;
  error: MailferryError;
}

function isFailure(r: UserRunSpec | LookUpFailure): r is LookUpFailure {
  return 'error' in r && !('source' in r);
}

function kindOfExit(code: number): MailferryError['kind'] {
  const kinds: Record<number, MailferryError['kind']> = { 64: 'usage', 65: 'data', 67: 'nouser', 77: 'permission', 78: 'config' };
  return kinds[code] ?? 'tempfail';
}

/** `sync-ended`: a sync's worker answered; the changes seen while it ran are judged next. */
type DaemonEvents = { synced: [SyncReport]; hint: [string, ReplicationPriority]; 'sync-ended': [string] };

export class ReplicatorDaemon extends EventEmitter<DaemonEvents> {
  private settings: Settings;
  private readonly owner = `${hostname()}:${process.pid}`;
  private runs = new Map<string, UserRunSpec>();
  private plans = new Map<string, WatchPlan>();
  private readonly hints = new Map<string, { priority: ReplicationPriority; first: number; last: number }>();
  private hintTimer: NodeJS.Timeout | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private pumping = false;
  private pumpAgain = false;
  private checking: Promise<void> | undefined;
  private stopping = false;
  private abandoned = false;
  private active = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** Users whose sync runs now. */
  private readonly syncing = new Set<string>();
  /** Their changes, from the claim until the sync's end is judged. */
  private readonly duringSync = new Map<string, DuringSync>();
  /** Syncs whose changes were all found to be their own writes, and so not queued again. */
  ownWritesDropped = 0;
  private stoppedPromise: Promise<void> | undefined;

  private constructor(
    private readonly opts: ReplicatorOptions,
    private readonly stateDir: string,
    private readonly unlock: () => void,
    private readonly queue: ReplicationQueue,
    private readonly fingerprints: FingerprintStore,
    private userdb: UserDb,
    private readonly pool: SyncWorkerPool,
    private readonly watcher: MailWatcher,
  ) {
    super();
    this.settings = opts.settings;
  }

  static async start(opts: ReplicatorOptions): Promise<ReplicatorDaemon> {
    const { settings } = opts;
    const stateDir = replicatorStateDir(settings);
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw fsError(err, `replicator state directory ${stateDir}`);
    }
    const userdb = await openUserDb(settings);
    if (userdb === undefined) throw configError('the replicator needs a userdb: set userdb in the configuration (or -o userdb=passwd-file:FILE)');
    const undo: (() => unknown)[] = [() => userdb.close()];
    try {
      const unlock = acquireDaemonLock(stateDir);
      undo.push(unlock);
      let daemon: ReplicatorDaemon | undefined;
      // The hand-over after an outage queued users: they run now, not at the end of the outage's last wait.
      const queue = await openReplicationQueue(settings, stateDir, undefined, () => daemon?.kick());
      undo.push(() => queue.close());
      const fingerprints = FingerprintStore.open(stateDir);
      undo.push(() => fingerprints.close());
      const pool = new SyncWorkerPool(replicatorSettingsOf(settings).maxConns, settings, { verbose: opts.verbose, debug: opts.debug });
      const watcher = new MailWatcher(
        replicatorSettingsOf(settings).maxWatchedUsers,
        (user, hint, change) => daemon?.hint(user, hint, change),
        (user, err) => daemon?.watchFailed(user, err),
      );
      undo.push(() => watcher.close());
      daemon = new ReplicatorDaemon(opts, stateDir, unlock, queue, fingerprints, userdb, pool, watcher);
      await daemon.begin();
      return daemon;
    } catch (err) {
      for (const u of undo.reverse()) await u();
      throw err;
    }
  }

  private log(line: string): void {
    this.opts.log(line);
  }

  private async begin(): Promise<void> {
    const loaded = await loadReplicaUsers(this.opts.selection, this.userdb, this.settings, (l) => this.log(l));
    const now = Date.now();
    // Claims left by a replicator that died: their syncs never finished.
    const released = await this.queue.recoverClaims(now);
    const { added, removed } = await this.queue.setUsers(loaded.runs.keys(), now);
    this.runs = loaded.runs;
    await this.lookUpAddedUsers();
    this.fingerprints.retain(new Set(this.runs.keys()));
    this.planWatches();
    this.control = await ControlServer.listen(this.opts.socketPath, (r) => this.answer(r));
    try {
      this.notifier = await this.listenForDovecot();
    } catch (err) {
      await this.control.close();
      throw err;
    }
    const counts = await this.queue.counts(now);
    this.log(
      `started: ${counts.total} users (${added} new, ${removed} gone${loaded.skipped ? `, ${loaded.skipped} noreplicate` : ''}${loaded.failed ? `, ${loaded.failed} left out` : ''}${released ? `, ${released} unfinished syncs queued again` : ''}), ` +
        `${this.watcher.size} watched, ${this.pool.size} workers; ${this.queue.description}, control socket ${this.opts.socketPath}` +
        (this.notifier ? `, Dovecot notify socket ${this.notifier.socketPath} and fifo ${this.notifier.fifoPath}` : ''),
    );
    this.armCheck();
    // The first check right away: it finds what changed while no replicator ran.
    void this.check();
    this.kick();
  }

  private control: ControlServer | undefined;
  private notifier: NotifyListener | undefined;

  /** The socket (and fifo) Dovecot's replication plugin writes to, when one is configured. */
  private async listenForDovecot(): Promise<NotifyListener | undefined> {
    const s = this.settings;
    if (s.replication_notify_socket === undefined) return undefined;
    return NotifyListener.listen(this, {
      socketPath: s.replication_notify_socket,
      uid: s.replication_notify_user === undefined ? undefined : resolveUid(s.replication_notify_user, 'replication_notify_user'),
      gid: s.replication_notify_group === undefined ? undefined : resolveGid(s.replication_notify_group, 'replication_notify_group'),
      log: (line) => this.log(line),
      // Another replicator may run the sync a request asked for.
      pollMs: isSharedQueue(s) ? 1000 : undefined,
    });
  }

  /** The queue's record of these users' syncs (for sync requests whose sync another replicator may run). */
  async syncHistory(users: string[]): Promise<Map<string, SyncHistory>> {
    const wanted = new Set(users);
    const out = new Map<string, SyncHistory>();
    for (const u of await this.queue.list((name) => wanted.has(name))) out.set(u.user, { lastFastSync: u.lastFastSync, claimedAt: u.claimedAt });
    return out;
  }

  /** A changed notify socket, owner or group is taken up; a socket that cannot be made is logged and left out until the next reload. */
  private async reloadNotifier(before: Settings): Promise<void> {
    const keys = ['replication_notify_socket', 'replication_notify_user', 'replication_notify_group'] as const;
    if (keys.every((k) => before[k] === this.settings[k])) return;
    await this.notifier?.close();
    this.notifier = undefined;
    try {
      this.notifier = await this.listenForDovecot();
      if (this.notifier) this.log(`Dovecot notify socket ${this.notifier.socketPath} and fifo ${this.notifier.fifoPath}`);
      else this.log('no Dovecot notify socket any more');
    } catch (err) {
      this.log(`the Dovecot notify socket could not be made: ${(err as Error).message}; none until the next reload`);
    }
  }

  /** Whether a sync of `user` runs now. */
  isSyncing(user: string): boolean {
    return this.syncing.has(user);
  }

  /** Users added with `replicator add` that the userdb selection does not list. */
  private async lookUpAddedUsers(): Promise<void> {
    for (const u of await this.queue.list()) {
      if (u.origin !== 'added' || this.runs.has(u.user)) continue;
      const run = await this.lookUp(u.user);
      if (isFailure(run)) this.log(`${run.error.message}; it stays queued until it can be synced or is removed`);
      else this.runs.set(u.user, run);
    }
  }

  /**
   * A user's run from the userdb, or why there is none: `gone` when the user is not one to
   * replicate (unknown, noreplicate), else an error a later try may not have (an unreachable
   * userdb, a missing mail_replica the administrator may still add).
   */
  private async lookUp(user: string): Promise<UserRunSpec | LookUpFailure> {
    let record;
    try {
      record = await this.userdb.lookup(user);
    } catch (err) {
      return { gone: false, error: err instanceof MailferryError ? err : new MailferryError('tempfail', `user ${user}: ${String(err)}`) };
    }
    if (record === undefined) return { gone: true, error: new MailferryError('nouser', `user ${user}: no such user in ${this.userdb.description}`) };
    const run = replicaRun(record, this.settings);
    if (isRun(run)) return run;
    return { gone: run.skipped, error: new MailferryError(run.skipped ? 'data' : kindOfExit(run.exitCode), run.error) };
  }

  // ---- watching and checking ----

  private planWatches(): void {
    for (const user of [...this.plans.keys()]) {
      if (!this.runs.has(user)) {
        this.plans.delete(user);
        void this.watcher.unwatch(user).catch(() => {});
      }
    }
    for (const [user, run] of this.runs) {
      const plan = watchPlanOf(run);
      const old = this.plans.get(user);
      if (old !== undefined && JSON.stringify(old.targets) !== JSON.stringify(plan.targets)) void this.watcher.unwatch(user).catch(() => {});
      this.plans.set(user, plan);
    }
    // Past the limit (lowered by a reload) the last watched go first.
    const watched = [...this.runs.keys()].filter((u) => this.watcher.has(u));
    for (const user of watched.slice(this.watcher.capacity)) void this.watcher.unwatch(user).catch(() => {});
    for (const user of this.runs.keys()) {
      if (this.watcher.size >= this.watcher.capacity) break;
      if (!this.watcher.has(user)) this.watcher.watch(user, this.plans.get(user)!.targets);
    }
  }

  private watchFailed(user: string, err: Error): void {
    this.log(`user ${user}: watching the mail failed (${err.message}); the periodic check looks after this user`);
    this.hint(user, 'low');
  }

  /**
   * A change seen for `user`. An idle user's first change goes to the queue at once: waiting
   * for quiet would add its wait to every delivery's way to the replica. The changes that follow
   * it (or come while the user's sync runs) gather until the user's mail has been quiet for a
   * moment (or a second at most has passed since the first of them), as Dovecot's plugin gathers
   * them for half a second: a delivery of a thousand messages, or a client setting flags on all
   * of them, is a sync or two, not one a message.
   */
  private hint(user: string, priority: ReplicationPriority, change?: MessageChange): void {
    if (this.opts.debug) this.log(`watch: user ${user}: ${priority}${change ? ` ${change.dir}/${change.name ?? '?'}` : ''}`);
    this.emit('hint', user, priority);
    const now = Date.now();
    const during = this.duringSync.get(user);
    if (during !== undefined) {
      during.priority = higherPriority(during.priority, priority);
      during.first ??= now;
      during.last = now;
      if (change === undefined || during.ended || during.changes.length >= MAX_CHANGES_KEPT) during.unjudged = true;
      else during.changes.push(change);
      return;
    }
    const had = this.hints.get(user);
    if (had === undefined && !this.syncing.has(user)) {
      // 'none': handed over; the entry only marks the window in which more changes gather.
      this.hints.set(user, { priority: 'none', first: now, last: now });
      void this.handOver([[user, { priority, first: now }]]);
    } else if (had === undefined) this.hints.set(user, { priority, first: now, last: now });
    else {
      if (had.priority === 'none') had.first = now;
      had.priority = higherPriority(had.priority, priority);
      had.last = now;
    }
    this.hintTimer ??= setTimeout(() => void this.flushHints(), HINT_TICK_MS);
  }

  /** Hands the settled hints (all of them when `all`) to the queue. */
  private async flushHints(all = false): Promise<void> {
    this.hintTimer = undefined;
    const now = Date.now();
    const ready = [...this.hints].filter(([, h]) => all || now - h.last >= HINT_QUIET_MS || now - h.first >= HINT_MAX_WAIT_MS);
    for (const [user] of ready) this.hints.delete(user);
    await this.handOver(ready.filter(([, h]) => h.priority !== 'none'));
    if (this.hints.size > 0 && !all) this.hintTimer = setTimeout(() => void this.flushHints(), HINT_TICK_MS);
  }

  private async handOver(changes: [string, { priority: ReplicationPriority; first: number }][]): Promise<void> {
    if (changes.length === 0) return;
    try {
      for (const [user, h] of changes) await this.queue.notify(user, h.priority, h.first);
    } catch (err) {
      // The periodic check finds these users' changes again.
      this.log(`the queue did not take ${changes.length} users' changes: ${(err as Error).message}`);
    }
    this.kick();
  }

  /** Queues `user` at `priority` (full: a full sync); false when the replicator does not serve the user. */
  async notify(user: string, priority: ReplicationPriority, options: { full?: boolean } = {}): Promise<boolean> {
    const known = await this.queue.notify(user, priority, Date.now(), options);
    if (known) this.kick();
    return known;
  }

  private armCheck(): void {
    if (this.checkTimer) clearInterval(this.checkTimer);
    this.checkTimer = setInterval(() => void this.check(), Math.max(100, replicatorSettingsOf(this.settings).checkIntervalMs));
    this.checkTimer.unref();
  }

  /** The periodic check; one at a time. */
  check(): Promise<void> {
    this.checking ??= this.runCheck().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async runCheck(): Promise<void> {
    const users = [...this.plans.entries()];
    let next = 0;
    let queued = 0;
    const worker = async () => {
      while (next < users.length && !this.stopping) {
        const [user, plan] = users[next++]!;
        // Its sync records the fingerprint it leaves when it ends.
        if (this.syncing.has(user)) continue;
        let changed = plan.polled;
        let fp: Awaited<ReturnType<typeof fingerprint>> | undefined;
        if (plan.targets.length > 0) {
          fp = await fingerprint(plan.targets);
          const old = this.fingerprints.get(user);
          if (old === undefined || old.fresh || old.value !== fp.value) changed = true;
          // A watched user's second change in the same clock tick is seen by the watcher, not by mtimes.
          if (this.watcher.has(user)) fp.fresh = false;
        }
        if (changed && this.opts.debug) this.log(`check: user ${user}: ${plan.polled ? 'its mail is not on this machine' : 'its mail changed'}`);
        if (changed && (await this.queue.notify(user, 'low', Date.now()))) queued++;
        // Recorded only once the queue has the change: a queue that failed to take it sees it again at the next check.
        if (fp !== undefined && this.plans.has(user) && !this.syncing.has(user)) this.fingerprints.set(user, fp);
      }
    };
    try {
      await Promise.all(Array.from({ length: CHECK_PARALLEL }, worker));
    } catch (err) {
      this.log(`the periodic check failed: ${(err as Error).message}`);
    }
    if (this.opts.verbose) this.log(`check: ${users.length} users looked at, ${queued} queued`);
    if (queued > 0) this.kick();
  }

  // ---- scheduling ----

  /** Starts whatever is due, as workers allow. */
  private kick(): void {
    if (this.stopping) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
    });
  }

  private async pump(): Promise<void> {
    try {
      do {
        this.pumpAgain = false;
        while (!this.stopping && this.active < this.pool.size) {
          const claim = await this.queue.claim(this.owner, Date.now());
          if (claim === undefined) break;
          this.active++;
          this.syncing.add(claim.user);
          // Changes gathered before the claim are on disk before the sync lists the mail: it sees them.
          this.hints.delete(claim.user);
          this.duringSync.set(claim.user, { priority: 'none', first: undefined, last: 0, changes: [], unjudged: false, ended: false });
          const p = this.runClaim(claim)
            .catch((err: unknown) => this.log(`user ${claim.user}: the sync could not be recorded: ${(err as Error)?.message ?? String(err)}`))
            .finally(() => {
            // Not judged (the run ended early): its changes are queued as any change is.
            const during = this.duringSync.get(claim.user);
            if (during !== undefined) this.gatherAfterSync(claim.user, during);
            this.syncing.delete(claim.user);
            this.active--;
            this.inFlight.delete(p);
            this.kick();
          });
          this.inFlight.add(p);
        }
      } while (this.pumpAgain && !this.stopping);
      await this.armWake();
    } catch (err) {
      this.log(`the queue failed: ${(err as Error).message}; retrying in ${MAX_SLEEP_MS / 1000} s`);
      this.setWake(MAX_SLEEP_MS);
    }
  }

  private setWake(ms: number): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.kick();
    }, ms);
  }

  private async armWake(): Promise<void> {
    if (this.stopping) return;
    const due = await this.queue.nextDue();
    // Nothing queued, or all workers busy (a finishing sync kicks): the long sleep is a safety net.
    const ms = due === undefined || this.active >= this.pool.size ? MAX_SLEEP_MS : Math.min(MAX_SLEEP_MS, Math.max(5, due - Date.now()));
    this.setWake(ms);
  }

  private async runClaim(claim: SyncClaim): Promise<void> {
    const started = Date.now();
    let run = this.runs.get(claim.user);
    let reply: { exitCode: number; counts?: SyncReport['counts']; error?: string };
    if (run === undefined) {
      const found = await this.lookUp(claim.user);
      // 67 takes a user that is gone out of the queue (outcomeOf), as Dovecot's -NOUSER and -NOREPLICATE do.
      if (isFailure(found)) reply = { exitCode: found.gone ? 67 : found.error.exitCode, error: found.error.message };
      else {
        run = found;
        this.runs.set(claim.user, found);
        reply = await this.pool.run({ spec: found, full: claim.full, priority: claim.priority });
      }
    } else {
      reply = await this.pool.run({ spec: run, full: claim.full, priority: claim.priority });
    }
    const end = Date.now();
    // Stopped before it finished: the claim is given back (releaseClaims at the end of stop).
    if (this.abandoned) return;
    const { outcome, result } = outcomeOf(reply, end);
    await this.judgeChangesDuring(claim.user, reply.exitCode === 0);
    // A sync that saw mail change under it is queued again, unless the watcher's hints of those
    // changes are still gathering: they queue the user once the mail is quiet, so a storm of
    // changes is a few syncs, not one sync after another for as long as it lasts.
    const pending = this.hints.get(claim.user);
    if (outcome.result === 'ok' && outcome.again && pending !== undefined && pending.priority !== 'none') outcome.again = false;
    // Done before the claim is given up, so that once another replicator may take the user, all
    // that is left of this sync is its log line (the line marks the sync's end for whoever reads it).
    if (result !== 'gone' && result !== 'failed' && this.watcher.has(claim.user)) {
      // A first sync made the replica: it is watched from now on.
      await this.watcher.refresh(claim.user);
      // The sync's own writes are in the fingerprint now; a change the watcher misses after this still moves it.
      const plan = this.plans.get(claim.user);
      if (plan !== undefined && plan.targets.length > 0) this.fingerprints.set(claim.user, { ...(await fingerprint(plan.targets)), fresh: false });
    }
    await this.queue.complete(claim, outcome);
    if (result === 'gone') {
      this.runs.delete(claim.user);
      this.plans.delete(claim.user);
      await this.watcher.unwatch(claim.user);
    }
    const report: SyncReport = {
      user: claim.user,
      priority: claim.priority,
      full: claim.full,
      result,
      exitCode: reply.exitCode,
      counts: reply.counts,
      error: reply.error,
      ms: end - started,
      retryInMs: result === 'failed' ? backoffDelay(claim.failures + 1, replicatorSettingsOf(this.settings).failureBackoffMs) : undefined,
    };
    this.log(reportLine(report));
    this.emit('synced', report);
  }

  /**
   * The changes seen while `user`'s sync ran: dropped when they were its own writes (the pair
   * agrees on every message they name, own-writes.ts says why that loses nothing), else they
   * gather as any change does and queue the user once the mail is quiet. Changes that come
   * while this is judged are never dropped.
   */
  private async judgeChangesDuring(user: string, synced: boolean): Promise<void> {
    const during = this.duringSync.get(user);
    if (during === undefined) return;
    this.emit('sync-ended', user);
    // The sync's reply came on its own channel: the watcher's events of its last writes, queued by
    // the kernel before it, are delivered by the next look at the event loop's descriptors.
    await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
    during.ended = true;
    if (during.first === undefined) {
      this.duringSync.delete(user);
      return;
    }
    const targets = this.plans.get(user)?.targets ?? [];
    const own = synced && !during.unjudged && (await pairAgreesOn(targets, during.changes).catch(() => false)) && !during.unjudged;
    this.duringSync.delete(user);
    if (own) {
      this.ownWritesDropped++;
      if (this.opts.debug) this.log(`watch: user ${user}: ${during.changes.length} changes during the sync were its own writes`);
      return;
    }
    // Stopping, nothing gathers any more: the queue takes them for the next start.
    if (this.stopping) {
      this.duringSync.delete(user);
      await this.handOver([[user, { priority: during.priority, first: during.first }]]);
    } else this.gatherAfterSync(user, during);
  }

  /** The changes seen during a sync join the user's gathering hints, to be queued once the mail is quiet. */
  private gatherAfterSync(user: string, during: DuringSync): void {
    this.duringSync.delete(user);
    if (during.first === undefined) return;
    const had = this.hints.get(user);
    if (had === undefined || had.priority === 'none') this.hints.set(user, { priority: during.priority, first: during.first, last: Math.max(during.last, had?.last ?? 0) });
    else {
      had.priority = higherPriority(had.priority, during.priority);
      had.first = Math.min(had.first, during.first);
    }
    this.hintTimer ??= setTimeout(() => void this.flushHints(), HINT_TICK_MS);
  }

  // ---- control ----

  /** A control request answered: the socket's, and the way in for a status page or another front end. */
  async answer(r: ControlRequest): Promise<ControlReply> {
    const now = Date.now();
    switch (r.cmd) {
      case 'status': {
        if (r.mask !== undefined) {
          const test = maskMatcher(r.mask);
          return { ok: true, cmd: 'status-users', now, users: await this.queue.list(test) };
        }
        const polled = [...this.plans.keys()].filter((u) => !this.watcher.has(u)).length;
        return { ok: true, cmd: 'status', now, counts: await this.queue.counts(now), watched: this.watcher.size, polled };
      }
      case 'dsync-status':
        return { ok: true, cmd: 'dsync-status', now, workers: this.pool.status() };
      case 'replicate': {
        const users = isMask(r.mask) ? (await this.queue.list(maskMatcher(r.mask))).map((u) => u.user) : [r.mask];
        if (users.length === 0) return { ok: false, error: `no user of the replicator matches '${r.mask}'`, exitCode: 67 };
        if (!isMask(r.mask) && (await this.queue.list((u) => u === r.mask)).length === 0) {
          // Dovecot adds a user named outright that it did not know.
          const added = await this.add(r.mask, now);
          if (added instanceof MailferryError) return { ok: false, error: added.message, exitCode: added.exitCode };
        }
        for (const u of users) await this.queue.notify(u, r.priority, now, { full: r.full });
        this.kick();
        return { ok: true, cmd: 'replicate', users };
      }
      case 'add': {
        if (!isMask(r.mask)) {
          const added = await this.add(r.mask, now);
          if (added instanceof MailferryError) return { ok: false, error: added.message, exitCode: added.exitCode };
          this.kick();
          return { ok: true, cmd: 'add', users: [r.mask] };
        }
        const users: string[] = [];
        for await (const s of selectUsers({ kind: 'names', masks: [r.mask] }, this.userdb)) {
          if (!('record' in s)) continue;
          const run = replicaRun(s.record, this.settings);
          if (!isRun(run)) continue;
          await this.adopt(run, now);
          users.push(run.user);
        }
        if (users.length === 0) return { ok: false, error: `no user of ${this.userdb.description} with a mail_replica matches '${r.mask}'`, exitCode: 67 };
        this.kick();
        return { ok: true, cmd: 'add', users };
      }
      case 'remove': {
        const users = (await this.queue.list(isMask(r.mask) ? maskMatcher(r.mask) : (u) => u === r.mask)).map((u) => u.user);
        if (users.length === 0) return { ok: false, error: `no user of the replicator matches '${r.mask}'`, exitCode: 67 };
        await this.queue.removeUsers(users);
        for (const u of users) {
          this.plans.delete(u);
          await this.watcher.unwatch(u);
        }
        return { ok: true, cmd: 'remove', users };
      }
    }
  }

  private async add(user: string, now: number): Promise<UserRunSpec | MailferryError> {
    const run = await this.lookUp(user);
    if (isFailure(run)) return run.error;
    await this.adopt(run, now);
    return run;
  }

  private async adopt(run: UserRunSpec, now: number): Promise<void> {
    await this.queue.addUsers([run.user], now);
    this.runs.set(run.user, run);
    const plan = watchPlanOf(run);
    this.plans.set(run.user, plan);
    this.watcher.watch(run.user, plan.targets);
  }

  // ---- reload and stop ----

  /** SIGHUP: the configuration and the userdb read again; on any error the old ones stay in force. */
  reload(): Promise<void> {
    if (this.reloadDone !== undefined || this.stopping) return this.reloadDone ?? Promise.resolve();
    this.reloadDone = this.reloadNow().finally(() => {
      this.reloadDone = undefined;
    });
    return this.reloadDone;
  }

  /** The reload under way: a stop waits for it, or the reload would open watches and timers after the stop closed them. */
  private reloadDone: Promise<void> | undefined;

  private async reloadNow(): Promise<void> {
    let settings: Settings;
    let userdb: UserDb | undefined;
    try {
      settings = this.opts.loadSettings();
      userdb = await openUserDb(settings);
      if (userdb === undefined) throw configError('no userdb is configured any more');
    } catch (err) {
      this.log(`reload failed: ${(err as Error).message}; the configuration in force stays`);
      return;
    }
    let loaded;
    try {
      loaded = await loadReplicaUsers(this.opts.selection, userdb, settings, (l) => this.log(l));
    } catch (err) {
      await userdb.close();
      this.log(`reload failed: ${(err as Error).message}; the users in force stay`);
      return;
    }
    const old = this.userdb;
    this.userdb = userdb;
    await old.close();
    const before = this.settings;
    this.settings = settings;
    await this.reloadNotifier(before);
    const { added, removed } = await this.queue.setUsers(loaded.runs.keys(), Date.now());
    await this.queue.reconfigure(queueTimingOf(settings));
    this.runs = loaded.runs;
    await this.lookUpAddedUsers();
    this.fingerprints.retain(new Set(this.runs.keys()));
    this.pool.setSettings(settings);
    this.pool.resize(replicatorSettingsOf(settings).maxConns);
    this.watcher.setLimit(replicatorSettingsOf(settings).maxWatchedUsers);
    this.planWatches();
    this.armCheck();
    this.log(`reloaded: ${this.runs.size} users (${added} new, ${removed} gone), ${this.watcher.size} watched, ${this.pool.size} workers`);
    this.kick();
  }

  /** Stops taking work, lets running syncs finish (bounded), keeps the queue; a second call ends them at once. */
  stop(): Promise<void> {
    if (this.stoppedPromise !== undefined) {
      if (!this.abandoned) {
        this.log('stopping now: ending the running syncs');
        this.abandon();
      }
      return this.stoppedPromise;
    }
    this.stopping = true;
    this.stoppedPromise = this.shutdown();
    return this.stoppedPromise;
  }

  private abandon(): void {
    this.abandoned = true;
    this.pool.close('SIGTERM');
  }

  private async shutdown(): Promise<void> {
    await this.reloadDone?.catch(() => {});
    for (const t of [this.wakeTimer, this.hintTimer]) if (t) clearTimeout(t);
    if (this.checkTimer) clearInterval(this.checkTimer);
    await this.watcher.close();
    // Hints not yet handed over would be lost with the process.
    await this.flushHints(true).catch(() => {});
    const running = this.pool.busy;
    const limit = replicatorSettingsOf(this.settings).stopTimeoutMs / 1000;
    if (running > 0) this.log(`stopping: waiting up to ${limit} s for ${running} running sync${running === 1 ? '' : 's'}`);
    const finished = await this.pool.drain(limit * 1000);
    if (!finished && !this.abandoned) {
      this.log(`stopping: syncs still running after ${limit} s are ended; they run again at the next start`);
      this.abandon();
    }
    // A worker deaf to SIGTERM (stuck in a system call) does not hold the stop up for long.
    if (!(await this.pool.drain(10_000))) this.pool.close('SIGKILL');
    await Promise.allSettled([...this.inFlight]);
    await this.checking;
    const released = await this.queue.releaseClaims(this.owner, Date.now());
    this.pool.close();
    // Open until now: changes that came while syncs finished are in the queue for the next start.
    await this.notifier?.close();
    await this.control?.close();
    await this.queue.close();
    this.fingerprints.close();
    await this.userdb.close();
    this.unlock();
    this.log(`stopped${released ? `: ${released} unfinished syncs kept in the queue` : ''}`);
  }
}
