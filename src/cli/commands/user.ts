/**
 * `mailferry user [-u USER|MASK]... [-A] [-F FILE] [--json] [USER|MASK...]`: Dovecot's
 * `doveadm user`. For each user: the userdb's fields and the mail location and mail_replica a
 * backup or sync would use for them. Users are printed as the userdb gives them, never
 * gathered first; one user's error is printed in its place and the exit status comes at the
 * end, folded as the runs over users fold theirs.
 */
import type { Command } from 'commander';
import type { GlobalOptions } from '../run.js';

export interface UserCommandOptions {
  user?: string[];
  allUsers?: boolean;
  userFile?: string;
  json?: boolean;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerUserCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('user')
    .description("show users as doveadm user does: uid, gid, home, userdb fields, and the mail location and mail_replica a run would use")
    .argument('[user...]', "a user name, or a mask ('*@example.org', 'u?')")
    .option('-u, --user <user>', 'this user, or every user matching a mask; repeatable', collect)
    .option('-A, --all-users', 'every user of the userdb')
    .option('-F, --user-file <file>', 'the users listed in FILE, one per line ("user<TAB>destination" also shows that destination)')
    .option('--json', 'one JSON object per user and line')
    .action(async (args: string[], opts: UserCommandOptions) => {
      // The userdbs and the user's locations load only for this command.
      const { runUserCommand } = await import('./user-run.js');
      await runUserCommand(args, opts, globals());
    });
}
