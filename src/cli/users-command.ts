/**
 * `-u`, `-A`, `-F`, `-d` and `-j` of `backup` and `sync`: the options, and whether a run is for
 * users of the userdb. The run itself (run-for-users.ts) loads only when it is.
 */
import type { Command } from 'commander';

export interface UserCliOptions {
  user?: string[];
  allUsers?: boolean;
  userFile?: string;
  replica?: boolean;
  jobs?: string;
  json?: boolean;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function addUserOptions(cmd: Command): Command {
  return cmd
    .option('-u, --user <user>', "run for this user of the userdb, or every user matching a mask ('*@example.org', 'u?'); repeatable", collect)
    .option('-A, --all-users', 'run for every user of the userdb')
    .option('-F, --user-file <file>', 'run for the users listed in FILE, one per line; "user<TAB>destination" gives a user their own destination')
    .option('-d, --replica', "the destination is each user's mail_replica (userdb field or setting)")
    .option('-j, --jobs <n>', 'users run at once (default: the number of cores)');
}

export function usersRequested(opts: UserCliOptions): boolean {
  return Boolean(opts.user?.length || opts.allUsers || opts.userFile !== undefined || opts.replica);
}
