/**
 * What the users runner and its worker processes say to each other over the IPC channel.
 */
import type { Settings } from '../config/settings.js';
import type { RunCounts } from '../cli/summary.js';
import type { UserRunSpec } from './user-run-spec.js';

export type PairCommand = 'backup' | 'sync';

export interface WorkerRequest {
  id: number;
  command: PairCommand;
  spec: UserRunSpec;
  /** The command's own options (-m, -x, -1, -f, --dry-run, ...), as commander parsed them. */
  options: Record<string, unknown>;
  settings: Settings;
  verbose: boolean;
  debug: boolean;
}

export interface WorkerReply {
  id: number;
  exitCode: number;
  counts?: RunCounts;
  /** The one-line error of a failed run. */
  error?: string;
}
