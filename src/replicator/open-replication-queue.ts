/**
 * The queue the settings ask for: SQLite in the replicator's state directory. A queue shared by
 * replicators on many hosts (PostgreSQL) is opened here too, chosen by its own setting, behind
 * the same interface.
 */
import type { Settings } from '../config/settings.js';
import type { QueueTiming } from './next-sync-time.js';
import type { ReplicationQueue } from './replication-queue.js';
import { replicatorSettingsOf } from './replicator-settings.js';
import { SqliteReplicationQueue } from './sqlite-replication-queue.js';

export function queueTimingOf(settings: Settings): QueueTiming {
  const { fullSyncIntervalMs, failureBackoffMs } = replicatorSettingsOf(settings);
  return { fullSyncIntervalMs, failureBackoffMs };
}

export async function openReplicationQueue(settings: Settings, stateDir: string): Promise<ReplicationQueue> {
  return SqliteReplicationQueue.open(stateDir, queueTimingOf(settings));
}
