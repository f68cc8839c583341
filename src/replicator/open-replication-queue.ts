/**
 * The queue the settings ask for: SQLite in the replicator's state directory (`replicator_queue
 * = sqlite`, the default), or PostgreSQL shared by replicators on many hosts (a postgresql://
 * URI or a libpq key=value string), behind the same interface.
 */
import type { Settings } from '../config/settings.js';
import type { QueueTiming } from './next-sync-time.js';
import type { ReplicationQueue } from './replication-queue.js';
import { replicatorSettingsOf } from './replicator-settings.js';

export function queueTimingOf(settings: Settings): QueueTiming {
  const { fullSyncIntervalMs, failureBackoffMs } = replicatorSettingsOf(settings);
  return { fullSyncIntervalMs, failureBackoffMs };
}

/** True when the queue is shared (PostgreSQL): other processes may work on it, and it can be asked directly. */
export function isSharedQueue(settings: Settings): boolean {
  return (settings.replicator_queue ?? 'sqlite').toLowerCase() !== 'sqlite';
}

/** A line about the queue's own troubles, in the daemon's voice. */
function logLine(line: string): void {
  // eslint-disable-next-line no-control-regex
  process.stderr.write(`mailferry: replicator: ${line.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1))}\n`);
}

/**
 * Each kind is loaded only when chosen: the PostgreSQL client is no start-up cost of a host that
 * does not use it. `onReachable`: a shared queue's database is back after an outage (work may be
 * due that nobody was told of).
 */
export async function openReplicationQueue(settings: Settings, stateDir: string, log: (line: string) => void = logLine, onReachable?: () => void): Promise<ReplicationQueue> {
  if (!isSharedQueue(settings)) {
    const { SqliteReplicationQueue } = await import('./sqlite-replication-queue.js');
    return SqliteReplicationQueue.open(stateDir, queueTimingOf(settings));
  }
  const { PostgresReplicationQueue } = await import('./postgres-replication-queue.js');
  return PostgresReplicationQueue.open({
    connect: settings.replicator_queue,
    schema: settings.replicator_queue_schema ?? 'mailferry',
    timing: queueTimingOf(settings),
    leaseMs: (settings.replication_claim_lease ?? 60) * 1000,
    log,
    onReachable,
  });
}
