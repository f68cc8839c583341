/**
 * The tools under test, each run as one timed process on Maildir locations:
 *   mailferry: node dist/cli/main.js -o mail_fsync=F backup|sync maildir:SRC maildir:DST
 *   doveadm:   doveadm -c CONF -o mail_location=maildir:SRC -o mail_fsync=F backup|sync -s STATE -u alice maildir:DST
 * Both run stateful. mailferry keeps its sync state in the two stores by default; doveadm keeps
 * it only when given -s, so it gets the state string its previous run on the pair printed
 * ('' for the first), as Dovecot's replicator does. Without -s doveadm's "fast" mode compares
 * only UIDNEXT/HIGHESTMODSEQ per mailbox and misses a mailbox where both sides made equally many
 * changes (documented in doveadm-sync(1)); the checks caught exactly that in case 3.
 * doveadm runs from root with -u (a userdb lookup at the private Dovecot's auth socket, then it
 * drops to nobody), so its copies are owned by nobody; mailferry runs as the invoking user on
 * copies owned by that user. Each tool thus runs as the owner of its mail, and neither pays
 * for chown calls.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDovecot, type Dovecot } from '../test/support/dovecot.js';
import { findMbsync } from './mbsync.js';
import { timeCommand, type Timed } from './measure.js';

export type Fsync = 'never' | 'optimized';
export type Op = 'backup' | 'sync';

/** Per pair of Maildirs, kept across the cases of one repetition. */
export interface PairContext { doveadmState?: string }

export interface Tool {
  id: 'mailferry' | 'doveadm';
  /** Runs as nobody (needs its files owned by nobody when we are root). */
  dropsToNobody: boolean;
  run(op: Op, src: string, dst: string, fsync: Fsync, pair: PairContext): Promise<Timed>;
  /** The command line, for the report. */
  describe(op: Op, fsync: Fsync): string;
  /** Exit codes that mean success (both use 2 for "done, but run again"; the check decides). */
  okCodes: number[];
}

export const CLI = join(import.meta.dirname, '../dist/cli/main.js');

export const mailferry: Tool = {
  id: 'mailferry',
  dropsToNobody: false,
  okCodes: [0, 2],
  run: (op, src, dst, fsync) => timeCommand(process.execPath, [CLI, '-o', `mail_fsync=${fsync}`, op, `maildir:${src}`, `maildir:${dst}`]),
  describe: (op, fsync) => `node dist/cli/main.js -o mail_fsync=${fsync} ${op} maildir:SRC maildir:DST`,
};

export function doveadmTool(d: Dovecot): Tool {
  return {
    id: 'doveadm',
    dropsToNobody: true,
    okCodes: [0, 2],
    async run(op, src, dst, fsync, pair) {
      const t = await timeCommand('doveadm', [
        '-c', d.configPath, '-o', `mail_location=maildir:${src}`, '-o', `mail_fsync=${fsync}`,
        op, '-s', pair.doveadmState ?? '', '-u', 'alice', `maildir:${dst}`,
      ]);
      // The new state is the last line of stdout; keep the old one if the run failed.
      if (t.code === 0 || t.code === 2) pair.doveadmState = t.stdout.trim().split('\n').pop() ?? '';
      return t;
    },
    describe: (op, fsync) => `doveadm -c CONF -o mail_location=maildir:SRC -o mail_fsync=${fsync} ${op} -s STATE -u alice maildir:DST`,
  };
}

function onPath(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function versionOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '?';
}

export interface References {
  dovecot?: Dovecot;
  doveadmVersion?: string;
  mbsync?: string;
  notes: string[];
}

/** Starts the private Dovecot when doveadm is installed, installs mbsync when it may; says what is missing instead of failing. */
export async function findReferences(log: (s: string) => void): Promise<References> {
  const notes: string[] = [];
  const refs: References = { notes };
  if (!onPath('doveadm') || !onPath('dovecot')) {
    notes.push('doveadm: NOT INSTALLED, no reference timings (apt-get install dovecot-core)');
  } else {
    try {
      refs.dovecot = await startDovecot({ users: ['alice'], imap: false });
      refs.doveadmVersion = versionOf('dovecot', ['--version']);
    } catch (e) {
      notes.push(`doveadm: installed, but the private Dovecot did not start: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const mb = findMbsync(log);
  if (mb.version) refs.mbsync = mb.version;
  else notes.push(`mbsync: ${mb.missing}; the mbsync columns of cases 5-7 are empty`);
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npx tsc -p tsconfig.build.json first`);
  return refs;
}
