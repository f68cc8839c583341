/**
 * One sync as the replicator logs it and tells its listeners (the status page and metrics
 * will be such listeners): one line per sync, with the user, the priority it ran for, full or
 * incremental, the result, the counts and how long it took.
 */
import type { RunCounts } from '../cli/summary.js';
import type { WorkerReply } from '../users/worker-messages.js';
import type { ReplicationPriority } from './replication-priority.js';
import type { SyncOutcome } from './replication-queue.js';
import { formatSpan } from './status-format.js';

export interface SyncReport {
  user: string;
  priority: ReplicationPriority;
  full: boolean;
  /** ok; again: mail changed during it, queued once more; incomplete: something left out (see the warnings); failed; gone: left the queue. */
  result: 'ok' | 'again' | 'incomplete' | 'failed' | 'gone';
  exitCode: number;
  counts?: RunCounts;
  error?: string;
  ms: number;
  /** For a failure: when the next try is due, ms from now. */
  retryInMs?: number;
}

/** What a worker's reply means for the queue. 67 (no such user) takes the user out, as Dovecot's -NOUSER does. */
export function outcomeOf(reply: Pick<WorkerReply, 'exitCode' | 'counts' | 'error'>, at: number): { outcome: SyncOutcome; result: SyncReport['result'] } {
  if (reply.exitCode === 0) return { outcome: { result: 'ok', at }, result: 'ok' };
  if (reply.exitCode === 2) {
    const changed = (reply.counts as { changedDuringSync?: boolean } | undefined)?.changedDuringSync === true;
    return changed ? { outcome: { result: 'ok', at, again: true }, result: 'again' } : { outcome: { result: 'ok', at }, result: 'incomplete' };
  }
  const error = reply.error ?? `exit ${reply.exitCode}`;
  if (reply.exitCode === 67) return { outcome: { result: 'gone', at, error }, result: 'gone' };
  return { outcome: { result: 'failed', at, error }, result: 'failed' };
}

export function reportLine(r: SyncReport): string {
  const head = `user ${r.user}: ${r.full ? 'full' : 'incremental'} sync (${r.priority})`;
  const took = `in ${(r.ms / 1000).toFixed(2)} s`;
  const c = r.counts;
  const counts = c ? `: copied ${c.saved} messages (${c.bytes} bytes), ${c.flagUpdates} flag updates, ${c.expunged} expunges, ${c.treeActions} mailbox changes` : '';
  switch (r.result) {
    case 'ok':
      return `${head} ok ${took}${counts}`;
    case 'again':
      return `${head} ok ${took}${counts}; mail changed during it, queued again`;
    case 'incomplete':
      return `${head} incomplete ${took}${counts}; some mailboxes or files were left out`;
    case 'gone':
      return `${head} ended ${took} (exit ${r.exitCode}): ${r.error}; the user leaves the queue`;
    case 'failed':
      return `${head} failed ${took} (exit ${r.exitCode}): ${r.error}${r.retryInMs === undefined ? '' : `; next try in ${formatSpan(r.retryInMs)}`}`;
  }
}
