/**
 * The replicator's control protocol over its UNIX socket: one JSON object a line each way. A
 * client sends a request and reads one reply; a connection may carry several in turn. Replies
 * are `{"ok":true,...}` or `{"ok":false,"error":"one line","exitCode":N}` with the exit status
 * the client ends with (67 for a user nobody knows, 64 for a bad request).
 */
import { isPriority, type ReplicationPriority } from './replication-priority.js';
import type { QueueCounts, ReplicaUserState } from './replication-queue.js';
import type { WorkerState } from './sync-worker-pool.js';

/** A line longer than this is not a request: the connection is closed. */
export const MAX_LINE = 64 * 1024;

export type ControlRequest =
  | { cmd: 'status'; mask?: string }
  | { cmd: 'replicate'; mask: string; priority: ReplicationPriority; full: boolean }
  | { cmd: 'add'; mask: string }
  | { cmd: 'remove'; mask: string }
  | { cmd: 'dsync-status' };

export type ControlReply =
  | { ok: true; cmd: 'status'; now: number; counts: QueueCounts; watched: number; polled: number }
  | { ok: true; cmd: 'status-users'; now: number; users: ReplicaUserState[] }
  | { ok: true; cmd: 'replicate'; users: string[] }
  | { ok: true; cmd: 'add'; users: string[] }
  | { ok: true; cmd: 'remove'; users: string[] }
  | { ok: true; cmd: 'dsync-status'; now: number; workers: WorkerState[] }
  | { ok: false; error: string; exitCode: number };

function mask(value: unknown, cmd: string): string {
  if (typeof value !== 'string' || value === '' || value.length > 1024 || /[\0\n\r]/.test(value)) {
    throw new Error(`${cmd} needs a user name or mask`);
  }
  return value;
}

/** A request line, checked field by field; throws with a one-line reason. */
export function parseRequest(line: string): ControlRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error('not a JSON request');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
  const r = v as Record<string, unknown>;
  switch (r.cmd) {
    case 'status':
      return r.mask === undefined ? { cmd: 'status' } : { cmd: 'status', mask: mask(r.mask, 'status') };
    case 'replicate': {
      const priority = r.priority ?? 'sync';
      if (!isPriority(priority) || priority === 'none') throw new Error(`invalid priority ${JSON.stringify(priority)}: expected low, high or sync`);
      return { cmd: 'replicate', mask: mask(r.mask, 'replicate'), priority, full: r.full === true };
    }
    case 'add':
    case 'remove':
      return { cmd: r.cmd, mask: mask(r.mask, r.cmd) };
    case 'dsync-status':
      return { cmd: 'dsync-status' };
    default:
      throw new Error(`unknown command ${JSON.stringify(r.cmd)} (known: status, replicate, add, remove, dsync-status)`);
  }
}
