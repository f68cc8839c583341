/**
 * One look at the replicator for the status page and /status.json: the queue's counts, the
 * workers, the users matching a search (bounded: a page of a million rows helps nobody) with
 * their last syncs, lag and failures, and the syncs since the start. Read through the daemon's
 * control answers only, as the control socket reads it.
 */
import { maskMatcher } from '../users/user-selection.js';
import { ask, replicationLagMs, type StatusSource } from './replicator-metrics.js';
import type { ReplicationPriority } from './replication-priority.js';
import type { QueueCounts, ReplicaUserState } from './replication-queue.js';
import type { RecentSync, SyncHistory, SyncTotals } from './status-history.js';
import type { WorkerState } from './sync-worker-pool.js';

/** Users listed at most; the search narrows them down. */
export const USERS_SHOWN = 500;
/** A longer search is not a user name anyone has. */
export const MAX_QUERY = 256;

export type UserCondition = 'running' | 'failing' | 'queued' | 'idle';

export interface UserRow {
  user: string;
  condition: UserCondition;
  priority: ReplicationPriority;
  /** The last sync of either kind, and the last full one and the last success (ms since the epoch). */
  lastSync?: number;
  lastFullSync?: number;
  lastSuccess?: number;
  /** How long its oldest change not yet synced has waited (0: nothing waits). */
  lagMs: number;
  failures: number;
  lastError?: string;
  /** When the next sync is due, ms from now (0: due; undefined while one runs). */
  nextSyncInMs?: number;
}

export interface StatusSnapshot {
  now: number;
  startedAt: number;
  query: string;
  counts: QueueCounts;
  watched: number;
  polled: number;
  lagMs: number;
  workers: WorkerState[];
  /** The users matching the search, the most urgent first, at most `USERS_SHOWN`. */
  users: UserRow[];
  /** How many users match, and how many the replicator serves. */
  matched: number;
  total: number;
  totals: SyncTotals;
  /** The last syncs of matching users, newest first. */
  recent: RecentSync[];
}

/** A search: a mask when it holds `*` or `?`, else a part of the name in any case; '' matches all. */
export function userFilter(query: string): (user: string) => boolean {
  if (query === '') return () => true;
  if (/[*?]/.test(query)) return maskMatcher(query);
  const q = query.toLowerCase();
  return (user) => user.toLowerCase().includes(q);
}

function conditionOf(u: ReplicaUserState): UserCondition {
  if (u.claimedBy !== undefined) return 'running';
  if (u.failures > 0) return 'failing';
  return u.priority !== 'none' ? 'queued' : 'idle';
}

const ORDER: Record<UserCondition, number> = { running: 0, failing: 1, queued: 2, idle: 3 };

export function userRow(u: ReplicaUserState, now: number): UserRow {
  const condition = conditionOf(u);
  const last = Math.max(u.lastFastSync ?? -1, u.lastFullSync ?? -1);
  return {
    user: u.user,
    condition,
    priority: u.priority,
    lastSync: last < 0 ? undefined : last,
    lastFullSync: u.lastFullSync,
    lastSuccess: u.lastSuccess,
    lagMs: replicationLagMs([u], now),
    failures: u.failures,
    lastError: u.failures > 0 ? u.lastError : undefined,
    nextSyncInMs: condition === 'running' ? undefined : Math.max(0, u.nextSyncAt - now),
  };
}

/** Running, then failing, then waiting the longest, then by name. */
export function byUrgency(a: UserRow, b: UserRow): number {
  return ORDER[a.condition] - ORDER[b.condition] || b.lagMs - a.lagMs || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0);
}

export async function takeSnapshot(source: StatusSource, history: SyncHistory, query: string, limit = USERS_SHOWN): Promise<StatusSnapshot> {
  const [status, list, dsync] = await Promise.all([
    ask(source, { cmd: 'status' }, 'status'),
    ask(source, { cmd: 'status', mask: '*' }, 'status-users'),
    ask(source, { cmd: 'dsync-status' }, 'dsync-status'),
  ]);
  const matches = userFilter(query);
  const rows = list.users.filter((u) => matches(u.user)).map((u) => userRow(u, list.now));
  rows.sort(byUrgency);
  return {
    now: list.now,
    startedAt: history.startedAt,
    query,
    counts: status.counts,
    watched: status.watched,
    polled: status.polled,
    lagMs: replicationLagMs(list.users, list.now),
    workers: dsync.workers,
    users: rows.slice(0, limit),
    matched: rows.length,
    total: list.users.length,
    totals: history.totals(),
    recent: history.recent().filter((r) => matches(r.user)),
  };
}
