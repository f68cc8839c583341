/**
 * The same command run for users of the userdb (-u, -A, -F, -d, -j of `backup` and `sync`), each
 * with their own mail and destination, folded into one report and exit status.
 */
import { availableParallelism } from 'node:os';
import type { Settings } from '../config/settings.js';
import { openUserDb } from '../config/userdb/open-userdb.js';
import type { UserDb } from '../config/userdb/userdb.js';
import { usageError } from '../model/errors.js';
import { runUsers } from '../users/user-runner.js';
import { namesOnlyUserDb, selectUsers, type UserSelection } from '../users/user-selection.js';
import { UsersReport } from '../users/users-report.js';
import type { PairCommand } from '../users/worker-messages.js';
import type { PairCliOptions } from './commands/pair.js';
import type { GlobalOptions } from './run.js';
import type { UserCliOptions } from './users-command.js';

function selectionOf(opts: UserCliOptions): UserSelection {
  const given = [opts.user?.length ? '-u' : undefined, opts.allUsers ? '-A' : undefined, opts.userFile !== undefined ? '-F' : undefined].filter(Boolean);
  if (given.length > 1) throw usageError(`${given.join(' and ')} cannot be combined: choose one way to name the users`);
  if (opts.allUsers) return { kind: 'all' };
  if (opts.userFile !== undefined) {
    if (opts.userFile === '') throw usageError('-F needs a file name');
    return { kind: 'file', file: opts.userFile };
  }
  if (opts.user?.length) return { kind: 'names', masks: opts.user };
  throw usageError('-d needs users: -u USER, -A or -F FILE');
}

function jobsOf(value: string | undefined): number {
  if (value === undefined) return availableParallelism();
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 1000) throw usageError(`invalid -j '${value}': expected a number of users to run at once, 1 to 1000`);
  return n;
}

async function countUsers(selection: UserSelection, userdb: UserDb): Promise<number | undefined> {
  let n = 0;
  try {
    for await (const u of selectUsers(selection, userdb)) if ('record' in u || u.error) n++;
  } catch {
    return undefined;
  }
  return n;
}

/** Runs `command` for the selected users; returns the exit status. */
export async function runForUsers(command: PairCommand, a: string | undefined, b: string | undefined, opts: UserCliOptions & PairCliOptions, g: GlobalOptions, settings: Settings): Promise<number> {
  const selection = selectionOf(opts);
  const jobs = jobsOf(opts.jobs);
  // One location argument is the destination; two are SOURCE and DESTINATION templates.
  const [sourceArg, destinationArg] = b === undefined ? [undefined, a] : [a, b];
  if (opts.replica && destinationArg !== undefined) throw usageError(`-d takes the destination from the userdb; do not also give DESTINATION (${destinationArg})`);
  if (opts.reverse) throw usageError('-R cannot be used with -u, -A or -F: swap SOURCE and DESTINATION templates instead');
  const userdb = (await openUserDb(settings, 'userdb')) ?? (selection.kind === 'file' ? namesOnlyUserDb() : undefined);
  if (!userdb) throw usageError('-u and -A need a userdb: set userdb in the configuration (or -o userdb=passwd-file:FILE), or list the users with -F');
  // Workers inherit it. The stores create with the process umask, and an admin's 022 would
  // leave every user's new copy open to all local users (0755 directories, a 0644 index of
  // mailbox names and GUIDs); Dovecot makes a new mail root 0700 and its files 0600.
  process.umask(0o077);
  try {
    const progress = Boolean(g.verbose);
    const total = progress ? await countUsers(selection, userdb) : undefined;
    const report = new UsersReport(Boolean(opts.json), progress, total);
    const { user: _u, allUsers: _a, userFile: _f, replica: _d, jobs: _j, ...options } = opts;
    await runUsers(selectUsers(selection, userdb), {
      command,
      jobs,
      request: { sourceArg, destinationArg, replica: Boolean(opts.replica) },
      settings,
      options: options as Record<string, unknown>,
      verbose: Boolean(g.verbose),
      debug: Boolean(g.debug),
      onStart: () => report.userStarted(),
      onResult: (r) => report.result(r),
    });
    return report.finish();
  } finally {
    await userdb.close();
  }
}
