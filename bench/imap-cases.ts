/**
 * Cases 5-7 against the private Dovecot of imap-server.ts, over loopback, no TLS, IMAP LOGIN:
 *   5  IMAP -> empty Maildir     mailferry backup imap://src-mailferry… maildir:DST
 *                                mbsync (Sync Pull, Create Near)
 *                                doveadm backup -R -u src-doveadm imapc: (imapc_* settings, mail_prefetch_count=20, mail_location=maildir:DST)
 *   6  Maildir -> empty account  mailferry backup maildir:SRC imap://up-mailferry-rN…
 *                                mbsync (Sync Push, Create Far)
 *   7  no-op two-way sync        mailferry sync imap://src-mailferry… maildir:DST (DST from case 5)
 *                                mbsync (Sync All, Create Both) on its case-5 Maildir
 * mailferry's IMAP state (UID map, modseqs) goes to a per-repetition directory (`state=`), so
 * each case 5 is a first migration, and case 7 continues from it, as mbsync's SyncState does.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { grantDovecotAccess } from '../test/support/dovecot.js';
import { accountCounts, type ImapServer } from './imap-server.js';
import { compareCounts, maildirCounts, toCounts, type Counts } from './mailbox-counts.js';
import { runMbsync } from './mbsync.js';
import type { CaseRun } from './mbox-cases.js';
import { timeCommand } from './measure.js';
import { CLI } from './tools.js';

/** What the two sides of a case must hold: per mailbox, with system flags (Maildir) and without (IMAP). */
export interface Expected { withFlags: Counts; messages: Counts }

function imapUrl(s: ImapServer, user: string, stateDir: string): string {
  return `imap://${user}@${s.host}:${s.port}/?tls=none&auth=login&state=${encodeURIComponent(stateDir)}`;
}

function passwordFile(s: ImapServer, user: string, dir: string): string {
  const f = join(dir, `${user}.password`);
  writeFileSync(f, `${s.password(user)}\n`, { mode: 0o600 });
  return f;
}

const mailferryArgs = (pw: string, op: 'backup' | 'sync', a: string, b: string) =>
  [CLI, '--password-file', pw, '-o', 'mail_fsync=never', op, a, b];

export const IMAP_COMMANDS = {
  mailferry5: 'node dist/cli/main.js --password-file PW -o mail_fsync=never backup "imap://src-mailferry@127.0.0.1:PORT/?tls=none&auth=login&state=STATE" maildir:DST',
  doveadm5: 'doveadm -c CONF -o mail_location=maildir:DST -o mail_fsync=never -o mail_prefetch_count=20 -o imapc_host=127.0.0.1 -o imapc_port=PORT -o imapc_user=src-doveadm -o imapc_password=PW backup -R -u src-doveadm imapc:',
  mailferry6: 'node dist/cli/main.js --password-file PW -o mail_fsync=never backup maildir:SRC "imap://up-mailferry-rN@127.0.0.1:PORT/?tls=none&auth=login&state=STATE"',
  mailferry7: 'node dist/cli/main.js --password-file PW -o mail_fsync=never sync "imap://src-mailferry@127.0.0.1:PORT/?tls=none&auth=login&state=STATE" maildir:DST',
};

/** One tool's directory for one repetition; `dir/dst` is its case-5 Maildir, `dir/imap-state` mailferry's state. */
export interface ImapPair { dir: string; account: string }

export async function migrate(s: ImapServer, tool: 'mailferry' | 'mbsync' | 'doveadm', pair: ImapPair, expected: Expected): Promise<CaseRun> {
  const dst = join(pair.dir, 'dst');
  let timed;
  if (tool === 'mailferry') {
    const pw = passwordFile(s, pair.account, pair.dir);
    timed = await timeCommand(process.execPath, mailferryArgs(pw, 'backup', imapUrl(s, pair.account, join(pair.dir, 'imap-state')), `maildir:${dst}`));
  } else if (tool === 'mbsync') {
    timed = await runMbsync(join(pair.dir, 'mbsyncrc'), mbsyncPair(s, pair, dst), 'pull');
  } else {
    // doveadm drops to nobody and creates DST itself: its directory must be nobody's.
    await grantDovecotAccess(pair.dir);
    timed = await timeCommand('doveadm', [
      '-c', s.dovecot.configPath, '-o', `mail_location=maildir:${dst}`, '-o', 'mail_fsync=never',
      // Prefetching 20 bodies ahead halves doveadm's migration time here (2.3 s -> 1.1-1.7 s on the corpus).
      '-o', 'mail_prefetch_count=20', '-o', `imapc_host=${s.host}`, '-o', `imapc_port=${s.port}`, '-o', `imapc_user=${pair.account}`, '-o', `imapc_password=${s.password(pair.account)}`,
      'backup', '-R', '-u', pair.account, 'imapc:',
    ]);
  }
  return { timed, check: () => compareCounts('Maildir', maildirCounts(dst), expected.withFlags) };
}

const mbsyncPair = (s: ImapServer, pair: ImapPair, maildir: string) =>
  ({ host: s.host, port: s.port, user: pair.account, password: s.password(pair.account), maildir });

/** Case 6: `src` is the tool's own copy of the master; `account` is empty. */
export async function upload(s: ImapServer, tool: 'mailferry' | 'mbsync', src: string, pair: ImapPair, expected: Expected): Promise<CaseRun> {
  let timed;
  if (tool === 'mailferry') {
    const pw = passwordFile(s, pair.account, pair.dir);
    timed = await timeCommand(process.execPath, mailferryArgs(pw, 'backup', `maildir:${src}`, imapUrl(s, pair.account, join(pair.dir, 'imap-state-up'))));
  } else {
    timed = await runMbsync(join(pair.dir, 'mbsyncrc-up'), mbsyncPair(s, pair, src), 'push');
  }
  return {
    timed,
    check: () => [
      ...compareCounts(`account ${pair.account}`, toCounts(accountCounts(s, pair.account)), expected.messages),
      ...compareCounts('source Maildir', maildirCounts(src), expected.withFlags),
    ],
  };
}

/** Case 7: a two-way sync of the tool's case-5 Maildir with the account it came from. */
export async function twoWay(s: ImapServer, tool: 'mailferry' | 'mbsync', pair: ImapPair, expected: Expected): Promise<CaseRun> {
  const dst = join(pair.dir, 'dst');
  let timed;
  if (tool === 'mailferry') {
    const pw = passwordFile(s, pair.account, pair.dir);
    timed = await timeCommand(process.execPath, mailferryArgs(pw, 'sync', imapUrl(s, pair.account, join(pair.dir, 'imap-state')), `maildir:${dst}`));
  } else {
    timed = await runMbsync(join(pair.dir, 'mbsyncrc'), mbsyncPair(s, pair, dst), 'both');
  }
  return {
    timed,
    check: () => [
      ...compareCounts('Maildir', maildirCounts(dst), expected.withFlags),
      ...compareCounts(`account ${pair.account}`, toCounts(accountCounts(s, pair.account)), expected.messages),
    ],
  };
}
