/**
 * Case 11's mailferry side (file delivery) from two builds, run in turn (A B A B ...), so that a
 * change to the replicator is measured against the build before it in the same minutes of a
 * machine others also use; Dovecot's replicator once beside them with --dovecot. Each run's line
 * is case 11's; then the medians per build: CPU per message, latency, syncs per delivery.
 * Nothing is written under bench/results; the runs' copies are left under bench/data/work/.
 *
 *   node --import tsx bench/replication-compare.ts A/dist/cli/main.js B/dist/cli/main.js [--reps N] [--seconds S] [--users 100] [--dovecot]
 */
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './measure.js';
import { latencyStats, runReplicationSeries, type ReplicationSample } from './replication-cases.js';
import { usersDataset } from './users-data.js';
import { DATA_DIR } from './workspace.js';

const args = process.argv.slice(2);
const value = (flag: string, dflt: number) => {
  const i = args.indexOf(flag);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const clis = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
if (clis.length !== 2) {
  console.error('usage: node --import tsx bench/replication-compare.ts A_CLI B_CLI [--reps N] [--seconds S] [--users N] [--dovecot]');
  process.exit(64);
}
const reps = value('--reps', 2);
const seconds = value('--seconds', 10);
const users = value('--users', 100);
const rate = 10;
const log = (s: string) => process.stderr.write(`${s}\n`);

const ds = await usersDataset(users, log);
// Every run works in the same directory: each one's copies are moved aside (a rename, not a deletion, which would slow the next copies).
let runNo = 0;
const setAside = () => {
  const series = join(DATA_DIR, 'work', `replication-${users}`);
  if (existsSync(series)) renameSync(series, join(DATA_DIR, 'work', `compare-${process.pid}-${++runNo}`));
};
const runs: Record<string, ReplicationSample[]> = { A: [], B: [], dovecot: [] };
if (args.includes('--dovecot')) {
  const r = await runReplicationSeries({ ds, reps: 1, rate, seconds, dovecot: true, log, tools: ['dovecot'] });
  runs.dovecot!.push(...r.samples);
  setAside();
}
for (let rep = 0; rep < reps; rep++) {
  for (const [name, cli] of (rep % 2 === 0 ? [['A', clis[0]!], ['B', clis[1]!]] : [['B', clis[1]!], ['A', clis[0]!]]) as [string, string][]) {
    process.env.MAILFERRY_BENCH_REPLICATOR_CLI = cli;
    log(`${name}: ${cli}`);
    const r = await runReplicationSeries({ ds, reps: 1, rate, seconds, dovecot: false, log, tools: ['mailferry-file'] });
    runs[name]!.push(...r.samples);
    setAside();
  }
}
const fmt = (v: number | null | undefined, d: number) => (v == null || !Number.isFinite(v) ? '-' : v.toFixed(d));
for (const [name, samples] of Object.entries(runs)) {
  if (samples.length === 0) continue;
  const good = samples.filter((s) => s.problems.length === 0);
  const cpu = good.filter((s) => s.cpuSeconds !== undefined && s.latenciesMs.length > 0).map((s) => (1000 * s.cpuSeconds!) / s.latenciesMs.length);
  const syncs = good.filter((s) => s.streamSyncs !== undefined).map((s) => s.streamSyncs! / Math.max(1, s.deliveries));
  const st = latencyStats(good.flatMap((s) => s.latenciesMs));
  console.log(
    `${name.padEnd(8)} ${good.length}/${samples.length} correct; CPU per message ${fmt(cpu.length ? median(cpu) : null, 1)} ms (runs: ${cpu.map((c) => c.toFixed(1)).join(' ')}); ` +
      `p50 ${fmt(st.p50, 1)} ms, p99 ${fmt(st.p99, 1)} ms; syncs per delivery ${fmt(syncs.length ? median(syncs) : null, 2)}`,
  );
}
