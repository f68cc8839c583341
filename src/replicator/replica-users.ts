/**
 * The users the replicator serves: those of the userdb (or of the -u masks) that have a
 * mail_replica and no noreplicate, each resolved to the run a `sync -d` of that user would do.
 * A user whose entry is unusable is named once in the log and left out; the userdb failing as a
 * whole is an error of the caller's (startup fails, a reload keeps the users it had).
 */
import type { Settings } from '../config/settings.js';
import type { UserDb, UserRecord } from '../config/userdb/userdb.js';
import { MailferryError } from '../model/errors.js';
import { resolveUserRun, UserSkipped, type UserRunSpec } from '../users/user-run-spec.js';
import { selectUsers, type UserSelection } from '../users/user-selection.js';
import { watchTargetOf, type WatchTarget } from './watch-target.js';

/** The run for one user, or why there is none: `skipped` for noreplicate, else the error. */
export function replicaRun(record: UserRecord, settings: Settings): UserRunSpec | { skipped: boolean; error: string; exitCode: number } {
  try {
    return resolveUserRun(record, settings, { replica: true });
  } catch (err) {
    if (err instanceof UserSkipped) return { skipped: true, error: err.message, exitCode: 0 };
    if (err instanceof MailferryError) return { skipped: false, error: err.message, exitCode: err.exitCode };
    throw err;
  }
}

export function isRun(r: ReturnType<typeof replicaRun>): r is UserRunSpec {
  return 'source' in r;
}

export interface LoadedUsers {
  runs: Map<string, UserRunSpec>;
  /** noreplicate users left out. */
  skipped: number;
  /** Users left out for an error, each already logged. */
  failed: number;
}

export async function loadReplicaUsers(selection: UserSelection, userdb: UserDb, settings: Settings, log: (line: string) => void): Promise<LoadedUsers> {
  const out: LoadedUsers = { runs: new Map(), skipped: 0, failed: 0 };
  for await (const selected of selectUsers(selection, userdb)) {
    if ('error' in selected) {
      out.failed++;
      log(`user ${selected.user}: ${selected.error.message}; not replicated`);
      continue;
    }
    const run = replicaRun(selected.record, settings);
    if (isRun(run)) out.runs.set(run.user, run);
    else if (run.skipped) out.skipped++;
    else {
      out.failed++;
      log(`${run.error.startsWith(`user ${selected.record.user}`) ? '' : `user ${selected.record.user}: `}${run.error}; not replicated`);
    }
  }
  return out;
}

/** What of a user's two sides can be watched here, and whether the source can only be polled. */
export function watchPlanOf(run: UserRunSpec): { targets: WatchTarget[]; polled: boolean } {
  const source = watchTargetOf(run.source, run.home);
  const replica = watchTargetOf(run.destination, run.home);
  return { targets: [source, replica].filter((t): t is WatchTarget => t !== undefined), polled: source === undefined };
}
