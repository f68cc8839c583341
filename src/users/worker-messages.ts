/**
 * What the users runner and its worker processes say to each other over the IPC channel. A
 * worker runs the users it is sent one at a time, in the order sent; the runner sends the next
 * before the current one ends, and may take back one that has not started (`cancel`), to give
 * it to a worker that has run out of users.
 */
import type { Settings } from '../config/settings.js';
import type { RunCounts } from '../cli/summary.js';
import type { UserRunSpec } from './user-run-spec.js';

export type PairCommand = 'backup' | 'sync';

export interface WorkerRequest {
  type: 'run';
  id: number;
  command: PairCommand;
  spec: UserRunSpec;
  /** The command's own options (-m, -x, -1, -f, --dry-run, ...), as commander parsed them. */
  options: Record<string, unknown>;
  settings: Settings;
  verbose: boolean;
  debug: boolean;
}

/** Take back request `id` if it has not started. */
export interface WorkerCancel {
  type: 'cancel';
  id: number;
}

export type WorkerMessage = WorkerRequest | WorkerCancel;

export interface WorkerReply {
  type: 'done';
  id: number;
  exitCode: number;
  counts?: RunCounts;
  /** The one-line error of a failed run. */
  error?: string;
}

/** The answer to a cancel: `cancelled` false when the request had already started (its reply follows) or ended. */
export interface WorkerCancelReply {
  type: 'cancelled';
  id: number;
  cancelled: boolean;
}

export type WorkerAnswer = WorkerReply | WorkerCancelReply;
