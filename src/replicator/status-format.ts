/**
 * What the control commands print, in the shape `doveadm replicator` prints it: the queue's
 * counts as name/value lines, users and workers as tables. Pure.
 */
import type { QueueCounts, ReplicaUserState } from './replication-queue.js';
import type { WorkerState } from './sync-worker-pool.js';

/** A span as Dovecot shows times ago: `00:05:12`, `3d 01:00:00`; '-' for never. */
export function formatSpan(ms: number | undefined): string {
  if (ms === undefined) return '-';
  let s = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(s / 86400);
  s -= days * 86400;
  const hh = String(Math.floor(s / 3600)).padStart(2, '0');
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return `${days > 0 ? `${days}d ` : ''}${hh}:${mm}:${ss}`;
}

/** A cell holds no line break or other control character: a user name from an SQL userdb may. */
function cell(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

export function table(header: string[], cells: string[][]): string[] {
  const rows = cells.map((r) => r.map(cell));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

export function countLines(c: QueueCounts, watched: number, polled: number): string[] {
  const rows: [string, number][] = [
    ["Queued 'sync' requests", c.sync],
    ["Queued 'high' requests", c.high],
    ["Queued 'low' requests", c.low],
    ["Queued 'failed' requests", c.failedDue],
    ["Queued 'full resync' requests", c.fullDue],
    ["Waiting 'failed' requests", c.failedWaiting],
    ['Syncs running', c.running],
    ['Total number of known users', c.total],
    ['Users watched for changes', watched],
    ['Users only checked periodically', polled],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
}

export function userLines(users: readonly ReplicaUserState[], now: number): string[] {
  const ago = (t: number | undefined) => formatSpan(t === undefined ? undefined : now - t);
  return table(
    ['username', 'priority', 'fast sync', 'full sync', 'success sync', 'failed', 'next sync secs'],
    users.map((u) => [
      u.user,
      u.claimedBy !== undefined ? 'running' : u.priority,
      ago(u.lastFastSync),
      ago(u.lastFullSync),
      ago(u.lastSuccess),
      u.failures > 0 ? `y (${u.failures})` : '-',
      u.claimedBy !== undefined ? '-' : String(Math.max(0, Math.ceil((u.nextSyncAt - now) / 1000))),
    ]),
  );
}

export function workerLines(workers: readonly WorkerState[], now: number): string[] {
  return table(
    ['worker', 'username', 'type', 'priority', 'status'],
    workers.map((w) => [
      String(w.worker),
      w.user ?? '-',
      w.user === undefined ? '-' : w.full ? 'full' : 'incremental',
      w.priority ?? '-',
      w.user === undefined ? 'Idle' : `Syncing for ${formatSpan(now - (w.since ?? now))}`,
    ]),
  );
}
