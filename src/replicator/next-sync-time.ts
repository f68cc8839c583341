/**
 * When a user's next sync is due, as Dovecot 2.3's replicator orders its queue, plus the growing
 * back-off of users whose syncs fail. Pure: every queue implementation orders by these.
 */
import { PRIORITY_BOOST_MS, priorityRank, type ReplicationPriority } from './replication-priority.js';

export interface QueueTiming {
  /** A full sync (every mailbox compared, `sync -f`) this often: replication_full_sync_interval. */
  fullSyncIntervalMs: number;
  /** The wait after a first failure; it doubles with each further one (replication_failure_backoff). */
  failureBackoffMs: number;
}

/** A failing user is tried at least this often, however many times it failed: a replica that comes back is used within the hour. */
export const MAX_BACKOFF_MS = 60 * 60_000;

/** The wait after the `failures`-th failure in a row: base, 2 × base, 4 × base, ... up to an hour (or the base, if longer). */
export function backoffDelay(failures: number, baseMs: number): number {
  if (failures <= 0) return 0;
  const cap = Math.max(baseMs, MAX_BACKOFF_MS);
  // 2^40 × any base is past the cap; stop doubling before the number stops being exact.
  return Math.min(cap, baseMs * 2 ** Math.min(failures - 1, 40));
}

/** What the due time depends on: a row of the queue. Times are milliseconds since the epoch. */
export interface SchedulingFields {
  priority: ReplicationPriority;
  /** When the pending priority was raised to what it is. */
  lastUpdate: number;
  /** A full sync was asked for (`replicate -f`). */
  forceFull: boolean;
  lastFastSync?: number;
  lastFullSync?: number;
  failures: number;
  /** After a failure: not before this. */
  nextTry?: number;
}

/**
 * The due time: a user never synced is due at once (time 0, before everyone); a pending
 * priority is due at its change's time less the priority's boost; otherwise the next full sync
 * is due a full interval after the last. A failing user waits out its back-off whatever is
 * pending, except a `sync` request: an administrator asking is worth one more try.
 */
export function nextSyncTime(u: SchedulingFields, timing: QueueTiming): number {
  let due: number;
  if (u.lastFastSync === undefined && u.lastFullSync === undefined) due = 0;
  else if (u.priority !== 'none') due = u.lastUpdate - PRIORITY_BOOST_MS[u.priority];
  else if (u.forceFull) due = u.lastUpdate;
  else due = (u.lastFullSync ?? 0) + timing.fullSyncIntervalMs;
  if (u.failures > 0 && u.nextTry !== undefined && priorityRank(u.priority) < priorityRank('sync')) due = Math.max(due, u.nextTry);
  return due;
}

/** Whether a sync started `now` compares every mailbox: asked for, never done, or a full interval since the last. */
export function fullSyncDue(u: Pick<SchedulingFields, 'forceFull' | 'lastFullSync'>, now: number, timing: QueueTiming): boolean {
  return u.forceFull || u.lastFullSync === undefined || now - u.lastFullSync >= timing.fullSyncIntervalMs;
}
