/**
 * `mailferry sync [-1] [SOURCE] DESTINATION`: dsync's `doveadm sync`; with -u, -A or -F, for
 * users of the userdb.
 */
import type { Command } from 'commander';
import { usageError } from '../../model/errors.js';
import type { SyncCliOptions } from '../jobs/sync-job.js';
import type { GlobalOptions } from '../run.js';
import { addUserOptions, usersRequested, type UserCliOptions } from '../users-command.js';
import { addPairOptions } from './pair-options.js';

export function registerSyncCommand(program: Command, globals: () => GlobalOptions): void {
  const cmd = program
    .command('sync')
    .description('two-way sync of SOURCE and DESTINATION: changes on both sides merge, nothing is lost (-1: merge SOURCE into DESTINATION only)')
    .argument('[source]', 'source mail location (default: -o mail_location=..., or the user\'s mail with -u/-A/-F)')
    .argument('[destination]', 'destination mail location, created when missing (a template such as maildir:/replica/%u with -u/-A/-F)')
    .option('-1, --oneway', 'one-way merge: DESTINATION gains what SOURCE has, deletes nothing; SOURCE is not changed')
    .option('-f, --full', 'full sync: compare every mailbox, even those unchanged since the last sync')
    .option('-s, --state <state>', "stateful sync from this state string ('' to start); the new state is printed on stdout");
  addUserOptions(addPairOptions(cmd)).action(async (a: string | undefined, b: string | undefined, opts: SyncCliOptions & UserCliOptions) => {
    const g = globals();
    // What the run needs loads in one go, after the command line is parsed: the settings, and
    // the job for one account (the users runner, worker processes and userdbs, for a run over users).
    const [{ settingsFrom }, job] = await Promise.all([import('../settings.js'), usersRequested(opts) ? undefined : import('../jobs/sync-job.js')]);
    const settings = settingsFrom(g);
    if (!job) {
      if (opts.state !== undefined) throw usageError('-s STATE belongs to one account; it cannot be given with -u MASK, -A or -F');
      const { runForUsers } = await import('../run-for-users.js');
      process.exitCode = await runForUsers('sync', a, b, opts, g, settings);
      return;
    }
    const outcome = await job.syncJob(a, b, opts, { settings, verbose: Boolean(g.verbose), debug: Boolean(g.debug), prefix: 'mailferry: ', oneOfMany: false });
    if (outcome.exitCode !== 0) process.exitCode = outcome.exitCode;
  });
}
