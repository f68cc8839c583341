/**
 * What a backup or sync of one pair needs beyond its options, whether it runs as the whole
 * command or as one user of many (then its messages carry the user's name and the users runner
 * prints the results).
 */
import type { Settings } from '../../config/settings.js';
import type { RunCounts } from '../summary.js';

export interface JobContext {
  settings: Settings;
  verbose: boolean;
  debug: boolean;
  /** Starts every message line: `mailferry: ` or `mailferry: user alice: `. */
  prefix: string;
  /** One user of many: no progress bar, no summary or JSON of its own. */
  oneOfMany: boolean;
}

export interface JobOutcome {
  /** 0, or 2 when the run must be repeated or left something out. */
  exitCode: number;
  counts: RunCounts;
}
