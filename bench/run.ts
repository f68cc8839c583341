/**
 * mailferry vs Dovecot's doveadm on the same Maildirs, in the same run. Usage:
 *   npm run bench               full: SpamAssassin corpus with mail_fsync=never and =optimized, 100k account with never
 *   npm run bench -- --quick    corpus, mail_fsync=never, 3 repetitions (under two minutes)
 *   npm run bench -- --reps N   N repetitions for every series
 *   npm run bench -- --only big only the series of one data set (corpus or big)
 * Progress goes to stderr, the tables to stdout, everything to bench/results/latest.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { runSeries } from './cases.js';
import { DATA_DIR, dataset, type Dataset } from './data.js';
import { flushDisks, median, rssMethod, waitForCheapCreates } from './measure.js';
import { formatNotMeasurable, formatSeries, summarizeSeries, type SeriesSummary } from './report.js';
import { CLI, doveadmTool, findReferences, mailferry, type Fsync, type Tool } from './tools.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const valueOf = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
const repsArg = valueOf('--reps') === undefined ? undefined : Number(valueOf('--reps'));
const only = valueOf('--only');
const unknown = args.filter((a, i) => !['--quick', '--reps', '--only'].includes(a) && !['--reps', '--only'].includes(args[i - 1]!));
if (unknown.length || (repsArg !== undefined && !(repsArg >= 1)) || (only !== undefined && only !== 'corpus' && only !== 'big')) {
  console.error(`usage: node --import tsx bench/run.ts [--quick] [--reps N] [--only corpus|big]   (bad: ${unknown.join(' ')})`);
  process.exit(64);
}

const allSeries: { data: Dataset['name']; fsync: Fsync; reps: number }[] = quick
  ? [{ data: 'corpus', fsync: 'never', reps: 3 }]
  : [
      { data: 'corpus', fsync: 'never', reps: 5 },
      { data: 'corpus', fsync: 'optimized', reps: 3 },
      // 100k with fsync on would take ~3 minutes per repetition for the two tools; left out.
      { data: 'big', fsync: 'never', reps: 3 },
    ];
const plan = allSeries.filter((p) => only === undefined || p.data === only);

const log = (s: string) => process.stderr.write(`${s}\n`);
const out = (s = '') => process.stdout.write(`${s}\n`);
const firstLine = (cmd: string, a: string[]) => {
  const r = spawnSync(cmd, a, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '?';
};

/** What `node` costs before mailferry does anything: part of every mailferry time. */
function nodeStartupMs(): number {
  const runs = [0, 1, 2, 3, 4].map(() => {
    const t = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', '0']);
    return Number(process.hrtime.bigint() - t) / 1e6;
  });
  return median(runs);
}

async function main(): Promise<void> {
  const started = Date.now();
  const work = join(DATA_DIR, 'work');
  if (existsSync(work)) {
    log('removing bench/data/work/ left by an earlier run');
    rmSync(work, { recursive: true, force: true });
    flushDisks();
  }
  const refs = await findReferences();
  const tools: Tool[] = [mailferry, ...(refs.dovecot ? [doveadmTool(refs.dovecot)] : [])];
  const env = {
    date: new Date().toISOString(),
    cpu: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    memoryGB: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    filesystem: firstLine('stat', ['-f', '-c', '%T', DATA_DIR.replace(/\/data$/, '')]),
    node: process.version,
    mailferry: firstLine(process.execPath, [CLI, '--version']),
    dovecot: refs.doveadmVersion ?? 'missing',
    mbsync: refs.mbsync ?? 'missing',
    rss: rssMethod === 'gnu-time' ? '/usr/bin/time -f %M (ru_maxrss)' : '/proc/PID/status VmHWM polled every 10 ms',
    nodeStartupMs: +nodeStartupMs().toFixed(1),
    loadAverageAtStart: +loadavg()[0]!.toFixed(2),
    loadAverageAtEnd: NaN,
    fileCreateUs: NaN,
    waitedForCheapCreatesSeconds: 0,
  };
  const notes = [
    'Durability is equal on both sides of every table: mail_fsync=never means neither tool fsyncs (`-o mail_fsync=never` for both);' +
      ' mail_fsync=optimized is mailferry\'s default and `-o mail_fsync=optimized` for doveadm (each saved mail fsynced before it counts).',
    'Every repetition gives each tool its own fresh copy of one pristine master (written once by mailferry\'s store, no index of either tool in it)' +
      ' and an empty destination; message files are hard links into the master, metadata files are copies.',
    'Case 1 includes building each tool\'s index: doveadm writes dovecot.index*/dovecot.list.index* into both Maildirs as it goes, mailferry builds mailferry.index.sqlite in both.',
    'Cases run in order on the pair the previous case left; the tools alternate (order swapped every repetition); `sync` runs before each timed process, and each starts >= 2.5 s after the last write (as a periodic sync would).',
    `Times are of the tool process alone (spawn to exit). mailferry's include Node startup (${env.nodeStartupMs} ms for \`node -e 0\` here); doveadm's include its userdb lookup at the private Dovecot's auth socket.`,
    'Both tools run stateful: mailferry keeps its sync state in the stores (its default); doveadm gets `-s STATE` from its previous run on the pair (\'\' first).' +
      ' Without -s, doveadm\'s fast mode missed a mailbox in case 3 where both sides had made equally many changes (a limit documented in doveadm-sync(1)).',
    'A tool that exits 2 ("done, but run again"; both tools define it) is run again at once, up to 3 runs, and the case costs the sum; the table says when.',
    'Case 3: per side 1% of the account (40% new mail delivered into new/, 40% flag changes by rename, 20% expunges by unlink), on different messages per side, made behind both tools\' backs.',
    'Every run is checked (counts per flag/keyword per mailbox on disk, and `mailferry mailbox status` on both sides with a scratch index); wrong runs are excluded from the medians and reported.',
    `msg/s = messages in the account / median seconds. RSS = highest peak over the repetitions, via ${env.rss}. Page cache is warm (the data fits in RAM).`,
    ...(quick ? ['Quick mode: corpus with mail_fsync=never only; `npm run bench` adds mail_fsync=optimized and the 100k account.']
      : ['The 100k account runs with mail_fsync=never only: with fsync on, case 1 alone takes minutes per tool and repetition here.']),
    ...refs.notes,
  ];
  out(`mailferry benchmark (${quick ? 'quick' : 'full'}) ${env.date}`);
  out(`machine: ${env.cpu}, ${env.memoryGB} GB RAM, Linux ${env.kernel}, ${env.filesystem}; node ${env.node}; mailferry ${env.mailferry}; Dovecot ${env.dovecot}`);
  for (const n of notes) out(`- ${n}`);
  // Both tools suffer alike from a busy machine (they alternate), but the spread grows.
  if (env.loadAverageAtStart > 0.5 * cpus().length) out(`- WARNING: load average ${env.loadAverageAtStart} at start on ${cpus().length} CPUs: something else is running, timings are noisy.`);
  out();

  const series: SeriesSummary[] = [];
  try {
    for (const p of plan) {
      const ds = await dataset(p.data, log);
      const probe = await waitForCheapCreates(join(work, 'probe'), log, quick ? 45 : 420);
      env.fileCreateUs = +probe.us.toFixed(1);
      env.waitedForCheapCreatesSeconds += Math.round(probe.waited);
      if (probe.us >= 120) out(`- WARNING: file creation still costs ${probe.us.toFixed(0)} µs (normal ~30) after waiting ${probe.waited.toFixed(0)} s; case 1 times are inflated.`);
      const reps = repsArg ?? p.reps;
      log(`series ${p.data} mail_fsync=${p.fsync}, ${reps} repetitions (${tools.map((t) => t.id).join(', ')})`);
      const load0 = +loadavg()[0]!.toFixed(2);
      const { samples, changesPerSide } = await runSeries(ds, p.fsync, reps, tools, log);
      const s = summarizeSeries(ds, p.fsync, reps, samples, changesPerSide);
      s.loadAverage = [load0, +loadavg()[0]!.toFixed(2)];
      series.push(s);
      out(formatSeries(s, !refs.dovecot));
      out();
    }
  } finally {
    await refs.dovecot?.stop();
  }
  out(formatNotMeasurable());
  out();
  env.loadAverageAtEnd = +loadavg()[0]!.toFixed(2);
  out(`load average: ${env.loadAverageAtStart} at start, ${env.loadAverageAtEnd} at end; file creation ${env.fileCreateUs} µs before the last series (waited ${env.waitedForCheapCreatesSeconds} s for it to be cheap)`);
  const commands = Object.fromEntries(tools.flatMap((t) => (['backup', 'sync'] as const).map((op) => [`${t.id} ${op}`, t.describe(op, 'never')])));
  const result = { mode: quick ? 'quick' : 'full', env, notes, commands, series, notMeasurable: formatNotMeasurable().split('\n'), wallSeconds: (Date.now() - started) / 1000 };
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  out(`written bench/results/latest.json; whole run ${result.wallSeconds.toFixed(0)} s`);
  const wrong = series.some((s) => s.cases.some((c) => [c.mailferry, c.doveadm].some((t) => t && t.correct < t.runs)));
  // A failed repetition's copies stay under bench/data/work/ for inspection.
  if (wrong) {
    out('SOME RUNS WERE WRONG: see the lines marked WRONG; their copies are under bench/data/work/');
    process.exitCode = 1;
  } else {
    // Last, and synced: the next run's probe waits out the slow creates this leaves behind.
    rmSync(work, { recursive: true, force: true });
    flushDisks();
  }
}

await main();
