/**
 * The million-message case: mailferry alone (the question is its memory, not a race) backs up a
 * generated account of 1,000,000 messages (million-data.ts; one folder holds 70% of them) into an
 * empty Maildir, syncs the pair, and syncs it again, each run timed with its CPU and peak RSS. The
 * goal is a peak RSS under 1 GB for each run. Every run's result is checked (check.ts).
 *
 * MAILFERRY_BENCH_MILLION_MESSAGES=N runs it on an account of N messages instead (built once and
 * cached as the 1M one is), for trying a change on 100k before spending minutes on 1M.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkPair } from './check.js';
import { tally } from './maildir-files.js';
import { flushDisks, sleep, timeCommand } from './measure.js';
import { millionDataset } from './million-data.js';
import { CLI } from './tools.js';
import { DATA_DIR, retireWork, warmCache, workCopy } from './workspace.js';

export const MILLION_GOAL_MB = 1024;

export interface MillionRun {
  op: string;
  seconds: number;
  cpuSeconds: number | null;
  rssMb: number | null;
  /** Peak RSS over the messages of the account: what a message costs, Node's own start included. */
  bytesPerMessage: number | null;
  attempts: number;
  correct: boolean;
  problems: string[];
}

export interface MillionSummary {
  data: string;
  messages: number;
  bytes: number;
  largestMailbox: { name: string; messages: number };
  runs: MillionRun[];
  /** Wall time of the whole case: the copy, the three runs and their checks. */
  wallSeconds: number;
  goalMb: number;
  allCorrect: boolean;
  otherCpu?: { seconds: number; wallSeconds: number };
}

export function millionMessages(): number {
  const n = Number(process.env.MAILFERRY_BENCH_MILLION_MESSAGES ?? 1_000_000);
  if (!Number.isInteger(n) || n < 1000) throw new Error(`MAILFERRY_BENCH_MILLION_MESSAGES must be a whole number of at least 1000, not ${JSON.stringify(process.env.MAILFERRY_BENCH_MILLION_MESSAGES)}`);
  return n;
}

const RUNS = [['backup', 'backup -> empty Maildir'], ['sync', 'sync (1st after the backup)'], ['sync', 'sync again, nothing changed']] as const;

export async function runMillion(opts: { messages: number; log: (s: string) => void }): Promise<MillionSummary> {
  const started = Date.now();
  const ds = millionDataset(opts.messages, opts.log);
  const expected = tally(ds.master);
  const largest = Object.entries(expected).map(([name, t]) => ({ name, messages: t.messages ?? 0 })).sort((a, b) => b.messages - a.messages)[0]!;
  // A directory of its own, not under work/: another run of the bench that starts or ends while
  // this one runs moves work/ to the trash (workspace.ts).
  const dir = join(DATA_DIR, `work-${ds.name}`);
  if (existsSync(dir)) opts.log(`  million: bench/data/work-${ds.name}/ left by an earlier run: ${retireWork(dir, 'quick')}`);
  mkdirSync(dir, { recursive: true });
  const src = join(dir, 'src'), dst = join(dir, 'dst');
  const t0 = Date.now();
  workCopy(ds.master, src);
  warmCache(ds.master);
  opts.log(`  million: copy of ${ds.messages} messages made and read in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const runs: MillionRun[] = [];
  for (const [op, title] of RUNS) {
    // Both mailferry and Dovecot trust a directory's mtime only once it is 2 s old.
    await sleep(2500);
    flushDisks();
    const args = [CLI, '-o', 'mail_fsync=never', op, `maildir:${src}`, `maildir:${dst}`];
    const t = await timeCommand(process.execPath, args);
    let attempts = 1;
    while (t.code === 2 && attempts < 3) {
      const again = await timeCommand(process.execPath, args);
      attempts++;
      Object.assign(t, { ...again, seconds: t.seconds + again.seconds, rssKb: Math.max(t.rssKb ?? 0, again.rssKb ?? 0) || undefined, cpuSeconds: (t.cpuSeconds ?? NaN) + (again.cpuSeconds ?? NaN) });
    }
    const problems = t.code === 0 ? [] : [`exit ${t.code}: ${t.stderr.trim().split('\n').slice(-2).join(' / ')}`];
    if (problems.length === 0) problems.push(...checkPair(src, dst, expected, [join(dir, 'check-index-src'), join(dir, 'check-index-dst')]));
    const rssMb = t.rssKb === undefined ? null : Math.round(t.rssKb / 1024);
    const run: MillionRun = {
      op: title, seconds: +t.seconds.toFixed(2), cpuSeconds: t.cpuSeconds === undefined || Number.isNaN(t.cpuSeconds) ? null : +t.cpuSeconds.toFixed(2),
      rssMb, bytesPerMessage: t.rssKb === undefined ? null : Math.round((t.rssKb * 1024) / ds.messages), attempts, correct: problems.length === 0, problems,
    };
    runs.push(run);
    opts.log(`  million ${title.padEnd(28)} ${t.seconds.toFixed(2).padStart(8)} s  CPU ${run.cpuSeconds ?? '-'} s  ${rssMb ?? '-'} MB` +
      `${attempts > 1 ? ` (exit 2, ${attempts} runs)` : ''}${problems.length ? `  WRONG: ${problems.join('; ').slice(0, 300)}` : ''}`);
    if (problems.length > 0) break;
  }
  const allCorrect = runs.length === RUNS.length && runs.every((r) => r.correct);
  // A wrong run's copies stay for inspection.
  if (allCorrect) opts.log(`  million copies: ${retireWork(dir, 'quick')}`);
  return {
    data: ds.name, messages: ds.messages, bytes: ds.bytes, largestMailbox: largest, runs,
    wallSeconds: Math.round((Date.now() - started) / 1000), goalMb: MILLION_GOAL_MB, allCorrect,
  };
}

export function formatMillion(s: MillionSummary): string {
  const lines = [
    `### ${s.messages.toLocaleString('en')} generated messages (${(s.bytes / 2 ** 20).toFixed(0)} MiB, largest folder ${s.largestMailbox.name} with ${s.largestMailbox.messages.toLocaleString('en')}), mailferry alone, mail_fsync=never, one run each; goal: peak RSS under ${s.goalMb} MB`,
    '',
    '| run | wall s | CPU s | peak RSS MB | RSS bytes / message | result |',
    '|---|---:|---:|---:|---:|---|',
    ...s.runs.map((r) => `| ${r.op} | ${r.seconds.toFixed(2)} | ${r.cpuSeconds?.toFixed(2) ?? '-'} | ${r.rssMb ?? '-'} | ${r.bytesPerMessage ?? '-'} | ${r.correct ? (r.rssMb !== null && r.rssMb < s.goalMb ? 'ok, under the goal' : 'ok, OVER the goal') : 'WRONG'} |`),
    '',
    `whole case (copy, runs, checks): ${s.wallSeconds} s`,
  ];
  return lines.join('\n');
}

export const MILLION_COMMANDS = {
  mailferry: 'node dist/cli/main.js -o mail_fsync=never backup|sync maildir:SRC maildir:DST (backup, sync, sync again)',
};
