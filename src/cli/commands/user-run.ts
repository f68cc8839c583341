/**
 * What `mailferry user` does once its options are read (see commands/user.ts): looks the users
 * up in the userdb and prints them; loaded only when that command runs.
 */
import { once } from 'node:events';
import { loadConfig } from '../../config/config-file.js';
import { AccountNames } from '../../config/userdb/account-names.js';
import { openUserDb } from '../../config/userdb/open-userdb.js';
import { configError, usageError } from '../../model/errors.js';
import { namesOnlyUserDb, selectUsers, type UserSelection } from '../../users/user-selection.js';
import type { GlobalOptions } from '../run.js';
import { describeUser, maskedUserInfo, oneLine, unknownUserInfo, userInfoJson, userInfoLines, type UserInfo } from '../user-info.js';
import type { UserCommandOptions } from './user.js';

function selectionOf(args: string[], opts: UserCommandOptions): UserSelection {
  const masks = [...args, ...(opts.user ?? [])];
  const given = [masks.length ? 'USER' : undefined, opts.allUsers ? '-A' : undefined, opts.userFile !== undefined ? '-F' : undefined].filter(Boolean);
  if (given.length > 1) throw usageError(`${given.join(' and ')} cannot be combined: choose one way to name the users`);
  if (opts.allUsers) return { kind: 'all' };
  if (opts.userFile !== undefined) {
    if (opts.userFile === '') throw usageError('-F needs a file name');
    return { kind: 'file', file: opts.userFile };
  }
  if (masks.length) return { kind: 'names', masks };
  throw usageError('name the users: USER or -u USER|MASK, -A for every user, or -F FILE');
}

async function write(text: string): Promise<void> {
  // A pipe that reads slowly must not make us hold 100k users' text in memory.
  if (!process.stdout.write(text)) await once(process.stdout, 'drain');
}

/** The most common failure's status decides; ties go to the lower status (as users-report.ts). */
function foldExit(failures: Map<number, number>): number {
  if (failures.size === 0) return 0;
  return [...failures].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
}

export async function runUserCommand(args: string[], opts: UserCommandOptions, g: GlobalOptions): Promise<void> {
  const selection = selectionOf(args, opts);
  const { settings, file } = loadConfig(g.config, g.o);
  // A -F list runs without a userdb (names only, mail_location for all); so it is shown.
  const userdb = (await openUserDb(settings, 'userdb')) ?? (selection.kind === 'file' ? namesOnlyUserDb() : undefined);
  if (!userdb) {
    throw configError(
      `no userdb is configured (${file === undefined ? 'no configuration file was read' : `none in ${file}`}): set userdb = "passwd-file:/etc/dovecot/users" (or passwd, static:ARGS, a [userdb] table for sql) in the configuration file, or give -o userdb=passwd-file:FILE`,
    );
  }
  const names = new AccountNames();
  const failures = new Map<number, number>();
  let first = true;
  const show = async (info: UserInfo) => {
    const { error } = maskedUserInfo(info);
    if (error) {
      failures.set(error.exitCode, (failures.get(error.exitCode) ?? 0) + 1);
      const prefix = `user ${info.user}: `;
      const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
      process.stderr.write(`mailferry: user ${oneLine(info.user)}: ${oneLine(message)}\n`);
    }
    if (opts.json) {
      await write(`${userInfoJson(info)}\n`);
      return;
    }
    // doveadm's table: one header, then each user's fields; a blank line between users.
    await write(`${first ? 'field\tvalue\n' : '\n'}${userInfoLines(info).join('\n')}\n`);
    first = false;
  };
  try {
    for await (const selected of selectUsers(selection, userdb)) {
      await show('error' in selected ? unknownUserInfo(selected.user, selected.error) : describeUser(selected.record, settings, names, selected.destination));
    }
  } finally {
    await userdb.close();
  }
  process.exitCode = foldExit(failures);
}
