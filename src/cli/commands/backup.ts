/**
 * `mailferry backup [SOURCE] DESTINATION`: dsync's `doveadm backup`; with -u, -A or -F, for
 * users of the userdb.
 */
import type { Command } from 'commander';
import type { BackupCliOptions } from '../jobs/backup-job.js';
import type { GlobalOptions } from '../run.js';
import { addUserOptions, usersRequested, type UserCliOptions } from '../users-command.js';
import { addPairOptions } from './pair-options.js';

/** Sets process.exitCode to 2 when a side changed during the run or a message was refused. */
export function registerBackupCommand(program: Command, globals: () => GlobalOptions): void {
  const cmd = program
    .command('backup')
    .description('make DESTINATION equal to SOURCE (mailboxes, UIDs, UIDVALIDITY, flags, keywords, subscriptions), removing what SOURCE lacks')
    .argument('[source]', 'source mail location (default: -o mail_location=..., or the user\'s mail with -u/-A/-F)')
    .argument('[destination]', 'destination mail location, created when missing (a template such as maildir:/backup/%u with -u/-A/-F)')
    .option('-f, --full', 'full sync: compare every mailbox, even those neither side changed since the last backup');
  addUserOptions(addPairOptions(cmd)).action(async (a: string | undefined, b: string | undefined, opts: BackupCliOptions & UserCliOptions) => {
    const g = globals();
    // What the run needs loads in one go, after the command line is parsed: the settings, and
    // the job for one account (the users runner, worker processes and userdbs, for a run over users).
    const [{ settingsFrom }, job] = await Promise.all([import('../settings.js'), usersRequested(opts) ? undefined : import('../jobs/backup-job.js')]);
    const settings = settingsFrom(g);
    if (!job) {
      const { runForUsers } = await import('../run-for-users.js');
      process.exitCode = await runForUsers('backup', a, b, opts, g, settings);
      return;
    }
    const outcome = await job.backupJob(a, b, opts, { settings, verbose: Boolean(g.verbose), debug: Boolean(g.debug), prefix: 'mailferry: ', oneOfMany: false });
    if (outcome.exitCode !== 0) process.exitCode = outcome.exitCode;
  });
}
