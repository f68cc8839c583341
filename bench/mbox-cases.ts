/**
 * Case 4: Maildir -> mbox conversion into an empty mbox root.
 *   mailferry: node dist/cli/main.js -o mail_fsync=never backup maildir:SRC mbox:DST
 *   doveadm:   doveadm -c CONF -o mail_location=maildir:SRC -o mail_fsync=never
 *                -o namespace/inbox/separator=/ backup -u alice mbox:DST:INBOX=DST/inbox
 * doveadm needs the explicit '/' separator: Maildir++ and mbox have different native ones, and
 * dsync refuses to pair locations that differ. INBOX=DST/inbox is what mailferry's mbox:DST means.
 * Each tool gets its own copy of the source (both write their index into it).
 *
 * doveadm's wall time here is mostly sleep: around each mbox it writes it sleeps in 0.5 s steps
 * and then touches the file (strace: clock_nanosleep of 0.5 s, utimensat on the mbox; about 1 s
 * per mailbox), apparently so that the file's mtime moves past the second it wrote in. No
 * setting turns this off, so the table shows CPU seconds too.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { grantDovecotAccess, type Dovecot } from '../test/support/dovecot.js';
import { compareCounts, mboxCounts, type Counts } from './mailbox-counts.js';
import { timeCommand, type Timed } from './measure.js';
import { CLI } from './tools.js';
import { workCopy } from './workspace.js';

export interface CaseRun { timed: Timed; check(): string[] }

/** Source copy for one tool and repetition: owned by nobody for doveadm, which drops to it. */
export async function mboxCaseSource(master: string, dir: string, forDoveadm: boolean): Promise<string> {
  mkdirSync(dir, { recursive: true });
  if (forDoveadm) await grantDovecotAccess(dir);
  const st = statSync(dir);
  const src = join(dir, 'src');
  workCopy(master, src, process.getuid?.() === 0 && forDoveadm ? { uid: st.uid, gid: st.gid } : undefined);
  return src;
}

export async function mailferryToMbox(src: string, dir: string, expected: Counts): Promise<CaseRun> {
  const dst = join(dir, 'dst');
  const timed = await timeCommand(process.execPath, [CLI, '-o', 'mail_fsync=never', 'backup', `maildir:${src}`, `mbox:${dst}`]);
  return { timed, check: () => compareCounts('mbox', mboxCounts(dst, join(dir, 'check-index')), expected) };
}

export async function doveadmToMbox(d: Dovecot, src: string, dir: string, expected: Counts): Promise<CaseRun> {
  const dst = join(dir, 'dst');
  const timed = await timeCommand('doveadm', [
    '-c', d.configPath, '-o', `mail_location=maildir:${src}`, '-o', 'mail_fsync=never', '-o', 'namespace/inbox/separator=/',
    'backup', '-u', 'alice', `mbox:${dst}:INBOX=${join(dst, 'inbox')}`,
  ]);
  return { timed, check: () => compareCounts('mbox', mboxCounts(dst, join(dir, 'check-index')), expected) };
}

export const MBOX_COMMANDS = {
  mailferry: 'node dist/cli/main.js -o mail_fsync=never backup maildir:SRC mbox:DST',
  doveadm: 'doveadm -c CONF -o mail_location=maildir:SRC -o mail_fsync=never -o namespace/inbox/separator=/ backup -u alice mbox:DST:INBOX=DST/inbox',
};
