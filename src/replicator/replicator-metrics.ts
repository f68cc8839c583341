/**
 * The replicator's Prometheus metrics, in a registry of its own (never prom-client's global
 * one, so two replicators in one process, as tests run them, count apart). Counters move with
 * the daemon's `synced` and `hint` events; the queue's gauges are read from the daemon's status
 * answer when scraped, so they are never older than the scrape.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ControlReply, ControlRequest } from './control-protocol.js';
import type { ReplicationPriority } from './replication-priority.js';
import type { ReplicaUserState } from './replication-queue.js';
import type { SyncReport } from './sync-report.js';

/** What the metrics and the status page ask the daemon: its control answers. */
export interface StatusSource {
  answer(r: ControlRequest): Promise<ControlReply>;
}

type Ok<C extends string> = Extract<ControlReply, { ok: true; cmd: C }>;

/** A control answer that must be a success; a failure is an error of the page or scrape. */
export async function ask<C extends 'status' | 'status-users' | 'dsync-status'>(source: StatusSource, request: ControlRequest, cmd: C): Promise<Ok<C>> {
  const reply = await source.answer(request);
  if (!reply.ok) throw new Error(reply.error);
  if (reply.cmd !== cmd) throw new Error(`the replicator answered ${reply.cmd} to ${request.cmd}`);
  return reply as Ok<C>;
}

/**
 * How long the oldest change not yet synced has waited: the users with a pending priority, from
 * the moment it was raised (the first hint of a burst), and those whose sync runs now, from when
 * it started. 0 when nothing waits.
 */
export function replicationLagMs(users: readonly ReplicaUserState[], now: number): number {
  let oldest = now;
  for (const u of users) {
    if (u.claimedBy !== undefined && u.claimedAt !== undefined) oldest = Math.min(oldest, u.claimedAt);
    else if (u.priority !== 'none') oldest = Math.min(oldest, u.lastUpdate);
  }
  return Math.max(0, now - oldest);
}

const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

export class ReplicatorMetrics {
  readonly registry = new Registry();
  private readonly syncs: Counter<'result'>;
  private readonly duration: Histogram<'type'>;
  private readonly messages: Counter;
  private readonly bytes: Counter;
  private readonly watcherEvents: Counter<'priority'>;
  private readonly lag: Gauge;
  private readonly depth: Gauge<'priority'>;
  private readonly running: Gauge;
  private readonly users: Gauge<'watch'>;
  private readonly workers: Gauge<'state'>;

  constructor(
    private readonly source: StatusSource,
    options: { processMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    this.syncs = new Counter({ name: 'mailferry_replication_syncs_total', help: 'Syncs finished, by result: ok, again (mail changed during it), incomplete, failed, gone (the user left the queue)', labelNames: ['result'], registers });
    // Every result is there from the start: a rate over a series that appears late misses its first increase.
    for (const r of ['ok', 'again', 'incomplete', 'failed', 'gone'] as const) this.syncs.inc({ result: r }, 0);
    this.duration = new Histogram({ name: 'mailferry_replication_sync_duration_seconds', help: 'How long each sync took, full or incremental', labelNames: ['type'], buckets: DURATION_BUCKETS, registers });
    this.messages = new Counter({ name: 'mailferry_replication_messages_copied_total', help: 'Messages copied by syncs, either way', registers });
    this.bytes = new Counter({ name: 'mailferry_replication_bytes_copied_total', help: 'Bytes of the messages copied by syncs, either way', registers });
    this.watcherEvents = new Counter({ name: 'mailferry_replication_watcher_events_total', help: "Changes the mail watchers saw, by the priority they queue (low: flags, high: new mail)", labelNames: ['priority'], registers });
    for (const p of ['low', 'high'] as const) this.watcherEvents.inc({ priority: p }, 0);
    this.lag = new Gauge({ name: 'mailferry_replication_lag_seconds', help: 'Age of the oldest change not yet replicated (queued or being synced); 0 when nothing waits', registers });
    this.depth = new Gauge({ name: 'mailferry_replication_queue_depth', help: 'Users waiting for a sync, by priority (sync, high, low; failed: due again after a failure; full: full sync due; failed_waiting: in back-off)', labelNames: ['priority'], registers });
    this.running = new Gauge({ name: 'mailferry_replication_syncs_running', help: 'Syncs running now', registers });
    this.users = new Gauge({ name: 'mailferry_replication_users', help: 'Users the replicator serves, by how their changes are found (watched, or polled by the periodic check)', labelNames: ['watch'], registers });
    this.workers = new Gauge({ name: 'mailferry_replication_workers', help: 'Sync workers, busy or idle', labelNames: ['state'], registers });
    // Unprefixed, as every exporter names them, so the usual process and Node.js dashboards read them.
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  synced(r: SyncReport): void {
    this.syncs.inc({ result: r.result });
    this.duration.observe({ type: r.full ? 'full' : 'incremental' }, r.ms / 1000);
    if (r.counts !== undefined) {
      this.messages.inc(r.counts.saved);
      this.bytes.inc(r.counts.bytes);
    }
  }

  hint(priority: ReplicationPriority): void {
    this.watcherEvents.inc({ priority });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text, the queue's gauges read just now. */
  async text(): Promise<string> {
    const [status, list, dsync] = await Promise.all([
      ask(this.source, { cmd: 'status' }, 'status'),
      ask(this.source, { cmd: 'status', mask: '*' }, 'status-users'),
      ask(this.source, { cmd: 'dsync-status' }, 'dsync-status'),
    ]);
    const c = status.counts;
    const depth: [string, number][] = [['sync', c.sync], ['high', c.high], ['low', c.low], ['failed', c.failedDue], ['full', c.fullDue], ['failed_waiting', c.failedWaiting]];
    for (const [priority, n] of depth) this.depth.set({ priority }, n);
    this.running.set(c.running);
    this.users.set({ watch: 'watched' }, status.watched);
    this.users.set({ watch: 'polled' }, status.polled);
    const busy = dsync.workers.filter((w) => w.user !== undefined).length;
    this.workers.set({ state: 'busy' }, busy);
    this.workers.set({ state: 'idle' }, dsync.workers.length - busy);
    this.lag.set(replicationLagMs(list.users, list.now) / 1000);
    return this.registry.metrics();
  }
}
