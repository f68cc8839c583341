/**
 * The IMAP server of cases 5-7: a private Dovecot on 127.0.0.1 (plaintext LOGIN, no TLS,
 * mail_fsync=never), one account per tool and role, so no tool ever reads another's writes:
 *   src-TOOL        seeded once per series with the data set; case 5 migrates from it, case 7
 *                   keeps the tool's case-5 Maildir in sync with it
 *   up-TOOL-rN      empty; case 6 uploads into it (a fresh account per repetition is the reset)
 * The accounts' Maildirs live under the series' work directory, not in Dovecot's temp root, so
 * they are retired with the rest of the run's copies instead of being deleted (see workspace.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { encodeMutf7 } from '../src/model/mutf7.js';
import { grantDovecotAccess, parseDoveadmTable, startDovecot, type Dovecot } from '../test/support/dovecot.js';
import { workCopy } from './workspace.js';

export interface ImapServer {
  dovecot: Dovecot;
  host: string;
  port: number;
  /** Directory holding every account's Maildir (ACCOUNTS/USER/Maildir). */
  accounts: string;
  password(user: string): string;
}

export async function startImapServer(accounts: string, users: string[]): Promise<ImapServer> {
  mkdirSync(accounts, { recursive: true });
  for (const u of users) mkdirSync(join(accounts, u), { recursive: true });
  await grantDovecotAccess(accounts);
  const dovecot = await startDovecot({ users, imap: true, extraConfig: `mail_location = maildir:${accounts}/%u/Maildir\n` });
  return { dovecot, host: '127.0.0.1', port: dovecot.port, accounts, password: (u) => dovecot.users[u]! };
}

function doveadm(s: ImapServer, args: string[], user: string): string {
  const r = spawnSync('doveadm', ['-c', s.dovecot.configPath, ...args, '-u', user], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`doveadm ${args.join(' ')} -u ${user} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Gives `user` the data set: its Maildir becomes a work copy of the master (the same UIDs and
 * UIDVALIDITY), then Dovecot indexes it and reads every message once, untimed, as a server that
 * has held the mail for a while has. Not timed.
 */
export async function seedAccount(s: ImapServer, user: string, master: string): Promise<void> {
  const dir = join(s.accounts, user);
  const st = statSync(dir);
  workCopy(master, join(dir, 'Maildir'), { uid: st.uid, gid: st.gid });
  doveadm(s, ['fetch', 'uid flags size.virtual date.received', 'mailbox', '*', 'all'], user);
}

/** Messages per mailbox of an account, keyed by the Maildir++ directory name (mUTF-7, '.'), as tally() keys them. */
export function accountCounts(s: ImapServer, user: string): Map<string, number> {
  const rows = parseDoveadmTable(doveadm(s, ['-f', 'tab', 'mailbox', 'status', 'messages', '*'], user));
  return new Map(rows.map((r) => [r.mailbox === 'INBOX' ? 'INBOX' : encodeMutf7(r.mailbox ?? ''), Number(r.messages)]));
}
