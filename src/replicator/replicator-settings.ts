/**
 * The replicator's settings (settings.ts holds their names, checks and descriptions) in the
 * units the replicator works in.
 */
import type { Settings } from '../config/settings.js';

export interface ReplicatorSettings {
  stateDir?: string;
  fullSyncIntervalMs: number;
  failureBackoffMs: number;
  checkIntervalMs: number;
  stopTimeoutMs: number;
  maxConns: number;
  maxWatchedUsers: number;
}

export function replicatorSettingsOf(s: Settings): ReplicatorSettings {
  return {
    stateDir: s.replicator_state_dir,
    fullSyncIntervalMs: s.replication_full_sync_interval * 1000,
    failureBackoffMs: s.replication_failure_backoff * 1000,
    checkIntervalMs: s.replication_check_interval * 1000,
    stopTimeoutMs: s.replication_stop_timeout * 1000,
    maxConns: s.replication_max_conns,
    maxWatchedUsers: s.replication_max_watched_users,
  };
}
