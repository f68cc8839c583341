/**
 * The replication queue: every user the replicator keeps in sync, what is pending for each
 * (one row per user, however many changes arrive), and each user's history (last fast and full
 * sync, last success, failures in a row, when to try again). The daemon sees it through this
 * interface only, so a queue shared by many replicator processes (PostgreSQL, rows claimed with
 * `SKIP LOCKED`) can stand beside the SQLite one without the daemon changing.
 *
 * Rules every implementation keeps (Dovecot 2.3's replicator, with growing back-off):
 * - `notify` raises a user's pending priority, never lowers it; the time of the change is kept
 *   from the moment the priority was raised, so a stream of changes cannot push a user back.
 * - `claim` hands out the user whose next sync is due first (`nextSyncTime`, then higher priority,
 *   then name) and never a user whose sync runs (claimed and not completed): one sync per user.
 *   The claim takes the pending priority with it, so changes arriving during the sync queue the
 *   user again.
 * - `complete` records the outcome; a failure gives the priority back and sets the next try after
 *   `backoffDelay`; a user that is gone leaves the queue.
 * - Claims of a process that ended without completing them are released with `releaseClaims`,
 *   their priority given back: the sync they stood for runs again.
 */
import { fullSyncDue, type QueueTiming, type SchedulingFields } from './next-sync-time.js';
import type { ReplicationPriority } from './replication-priority.js';

/** Where a user came from: the users the replicator serves (re-read on SIGHUP), or `replicator add`. */
export type UserOrigin = 'userdb' | 'added';

export interface ReplicaUserState extends SchedulingFields {
  user: string;
  origin: UserOrigin;
  lastSuccess?: number;
  /** The one-line error of the last failure, while failures > 0. */
  lastError?: string;
  /** Set while a sync of this user runs: the process that runs it and since when. */
  claimedBy?: string;
  claimedAt?: number;
  /** The due time as the queue orders it (ms since the epoch; 0 for a user never synced). */
  nextSyncAt: number;
}

export interface SyncClaim {
  user: string;
  owner: string;
  claimedAt: number;
  /** The pending priority the sync took ('none' for a due full sync). */
  priority: ReplicationPriority;
  /** Compare every mailbox (`sync -f`). */
  full: boolean;
  /** The full sync was asked for (`replicate -f`), not merely due. */
  forcedFull: boolean;
  /** Failures in a row before this sync. */
  failures: number;
}

/** The claim on a user taken `now` by `owner`: what its pending state asks of the sync. */
export function claimOf(state: ReplicaUserState, owner: string, now: number, timing: QueueTiming): SyncClaim {
  return {
    user: state.user,
    owner,
    claimedAt: now,
    priority: state.priority,
    full: fullSyncDue(state, now, timing),
    forcedFull: state.forceFull,
    failures: state.failures,
  };
}

export type SyncOutcome =
  /** `again`: the sync saw mail change under it (exit 2); the user is queued at low priority. */
  | { result: 'ok'; at: number; again?: boolean }
  | { result: 'failed'; at: number; error: string }
  /** The user is no longer one to replicate (unknown to the userdb, noreplicate): it leaves the queue. */
  | { result: 'gone'; at: number; error: string };

/** What `replicator status` shows without a mask, as Dovecot's counts. */
export interface QueueCounts {
  /** Users with a pending priority, by priority (failing users waiting out their back-off excluded). */
  sync: number;
  high: number;
  low: number;
  /** Failing users whose next try is due. */
  failedDue: number;
  /** Users with nothing pending whose full sync is due. */
  fullDue: number;
  /** Failing users still waiting out their back-off. */
  failedWaiting: number;
  /** Syncs running now. */
  running: number;
  /** Users the queue knows (removed ones not counted). */
  total: number;
}

export interface ReplicationQueue {
  /** For messages: `replicator queue /var/lib/mailferry/replicator/queue.sqlite`. */
  readonly description: string;

  /**
   * The users the replicator serves, replacing the previous set: new names join (due at once),
   * userdb users no longer listed leave; users added with `addUsers` stay, and users removed with
   * `removeUsers` stay removed. Returns how many joined and left.
   */
  setUsers(users: Iterable<string>, now: number): Promise<{ added: number; removed: number }>;
  /** `replicator add`: these users join (or come back after `remove`); returns how many were not there before. */
  addUsers(users: readonly string[], now: number): Promise<number>;
  /** `replicator remove`: these users leave and stay out until added again; returns how many left. */
  removeUsers(users: readonly string[]): Promise<number>;

  /** A change (or a request) for `user`; `full` asks for a full sync. False when the queue does not know the user. */
  notify(user: string, priority: ReplicationPriority, now: number, options?: { full?: boolean }): Promise<boolean>;

  /** The user due first, if one is due at `now`, marked as being synced by `owner`. */
  claim(owner: string, now: number): Promise<SyncClaim | undefined>;
  complete(claim: SyncClaim, outcome: SyncOutcome): Promise<void>;
  /** Gives back the claims of `owner` (a replicator stopping with syncs it ended): their syncs never finished. */
  releaseClaims(owner: string, now: number): Promise<number>;
  /**
   * Gives back the claims of processes that are gone (a crash, a SIGKILL), as a replicator does
   * when it starts. SQLite: every claim, since one replicator at a time uses the file (its pid
   * lock sees to that); a queue shared by many processes: the claims whose owner stopped
   * renewing them.
   */
  recoverClaims(now: number): Promise<number>;

  /** The earliest due time among users that can be claimed, or undefined when there are none. */
  nextDue(): Promise<number | undefined>;
  /** Every user the queue knows whose name `matches`, by name. */
  list(matches?: (user: string) => boolean): Promise<ReplicaUserState[]>;
  counts(now: number): Promise<QueueCounts>;

  /** New intervals (after SIGHUP): every due time is computed again. */
  reconfigure(timing: QueueTiming): Promise<void>;
  close(): Promise<void>;
}
