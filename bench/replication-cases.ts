/**
 * Case 11: continuous replication, mailferry's replicator against Dovecot 2.3's, on the same
 * machine: N accounts (the case-8 accounts, 20 messages in 2 folders each) with empty replicas;
 * once each tool's first full sync of every account is done, a steady stream of deliveries
 * (RATE a second, every account visited once in random order before any twice) and, for each
 * message, the time from the delivery returning to the message being in the replica's INBOX
 * (bench/replication-probe.ts), and the CPU the replication cost per message.
 *
 *   dovecot:         the reference recipe (dovecot-anchors.md case 4): LMTP into a primary with
 *                    `mail_plugins = notify replication`, aggregator + replicator, mail_replica =
 *                    tcp: to a second instance's doveadm server. CPU: replicator, aggregator and
 *                    doveadm-server on both ends.
 *   mailferry-lmtp:  the same LMTP (a primary without replication) into the same kind of
 *                    Maildir, Dovecot's index files and all; `mailferry replicator` watches it.
 *   mailferry-file:  delivered as an MDA without Dovecot does it (tmp/, then a rename into new/);
 *                    `mailferry replicator` watches it.
 * mailferry's CPU is its daemon and its workers. Every process is counted through cpuacct
 * cgroups (bench/replication-cpu.ts), so short-lived ones are not missed; LMTP's CPU is counted
 * apart and is in no tool's figure, as it is the delivery, not the replication.
 *
 * After each run every account's source and replica are compared (messages and flags per
 * folder, from disk) and must hold 20 + the messages delivered to it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanCorpus, rng } from './data.js';
import { DovecotInstance } from './dovecot-instance.js';
import { mailOwner, type MailOwner } from './mail-owner.js';
import { tally, tallyText } from './maildir-files.js';
import { median, sleep } from './measure.js';
import { CpuGroups } from './replication-cpu.js';
import { writePrimaryConf, writeReplicaConf } from './replication-dovecot.js';
import { lmtpDeliver } from './replication-lmtp.js';
import { ArrivalProbe, countMessages } from './replication-probe.js';
import { CLI } from './tools.js';
import { MESSAGES_PER_USER, userName, type UsersDataset } from './users-data.js';
import { DATA_DIR, workCopy } from './workspace.js';

export type ReplicationTool = 'mailferry-file' | 'mailferry-lmtp' | 'dovecot';
export const REPLICATION_TOOLS: readonly ReplicationTool[] = ['mailferry-file', 'mailferry-lmtp', 'dovecot'];

export const REPLICATION_COMMANDS = {
  mailferry: "node dist/cli/main.js -c '' -o userdb=passwd-file:USERS -o replicator_state_dir=STATE replicator --socket SOCK   (as root; USERS: userdb_mail=maildir:~/Maildir userdb_mail_replica=maildir:REPLICAS/%u/Maildir; every other setting at its default)",
  dovecot: 'dovecot -F -c PRIMARY (protocols = lmtp, mail_plugins = notify replication, replicator + aggregator, mail_replica = tcp:127.0.0.1:PORT) and dovecot -F -c REPLICA (doveadm server on PORT, static userdb, home REPLICAS/%u); replication settings at their defaults',
};

/** How long a message may take to reach its replica before it counts as lost. */
const ARRIVAL_TIMEOUT_MS = 60_000;
const FIRST_SYNC_TIMEOUT_MS = Number(process.env.MAILFERRY_BENCH_FIRST_SYNC_TIMEOUT_MS ?? 600_000);

export interface ReplicationSample {
  tool: ReplicationTool;
  rep: number;
  deliveries: number;
  /** Per delivered message, ms from the delivery returning to the replica holding it. */
  latenciesMs: number[];
  lost: number;
  failedDeliveries: number;
  /** Seconds until every account's first full sync was done, and the CPU it took. */
  initialSeconds: number;
  initialCpuSeconds: number | undefined;
  /** CPU of the replication during the stream (and 2 s after its last arrival). */
  cpuSeconds: number | undefined;
  lmtpCpuSeconds: number | undefined;
  otherCpuSeconds: number | undefined;
  streamSeconds: number;
  /** Syncs the replicator ran during the stream (mailferry logs each; Dovecot's does not). */
  streamSyncs: number | undefined;
  /** False when no cpuacct cgroup could be made here (the CPU figures are then missing). */
  cpuMeasured: boolean;
  problems: string[];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Accounts in delivery order: every one once, in random order, before any twice. */
function deliveryOrder(users: number, count: number, seed: number): number[] {
  const r = rng(seed);
  const out: number[] = [];
  while (out.length < count) {
    const round = Array.from({ length: users }, (_, i) => i + 1);
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    out.push(...round);
  }
  return out.slice(0, count);
}

/** Messages in every folder of a Maildir++ root (0 while it does not exist). */
function messagesIn(root: string): number {
  try {
    return Object.values(tally(root)).reduce((n, t) => n + (t.messages ?? 0), 0);
  } catch {
    return 0;
  }
}

const SYNC_LINE = /^mailferry: replicator: user (\S+): (?:full|incremental) sync \(\w+\) ok/;
const SYNC_DONE = /^mailferry: replicator: user \S+: (?:full|incremental) sync /;

/** The replicator under test, whichever it is: started, its first syncs awaited, stopped. */
interface Running {
  /** True once every account's first sync is done (besides every replica holding its messages). */
  firstSyncsDone(): boolean;
  /** Syncs finished so far (undefined when the tool does not say). */
  syncs(): number | undefined;
  stop(): Promise<void>;
  log(): string;
}

function startMailferry(opts: { dir: string; usersFile: string; users: number; cpu: CpuGroups }): Running {
  // MAILFERRY_BENCH_REPLICATOR_CLI=PATH runs another build's CLI (a change to the replicator measured against this one).
  const args = [process.env.MAILFERRY_BENCH_REPLICATOR_CLI ?? CLI, '-c', '', '-o', `userdb=passwd-file:${opts.usersFile}`, '-o', `replicator_state_dir=${join(opts.dir, 'state')}`,
    'replicator', '--socket', join(opts.dir, 'replicator.sock')];
  // MAILFERRY_BENCH_CPU_PROF=DIR profiles the daemon and its workers (fork passes node's flags on; bench/cpuprofile-top.ts reads the files).
  const prof = process.env.MAILFERRY_BENCH_CPU_PROF;
  const argv = [...opts.cpu.prefix('repl'), process.execPath, ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []), ...args];
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const synced = new Set<string>();
  let syncs = 0;
  const lines: string[] = [];
  let partial = '';
  const onText = (b: Buffer) => {
    partial += b.toString('utf8');
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (lines.length < 5000) lines.push(line);
      const m = SYNC_LINE.exec(line);
      if (m) synced.add(m[1]!);
      if (SYNC_DONE.test(line)) syncs++;
    }
  };
  child.stdout!.on('data', onText);
  child.stderr!.on('data', onText);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  return {
    firstSyncsDone: () => {
      if (child.exitCode !== null) throw new Error(`mailferry replicator exited (${child.exitCode}): ${lines.slice(-5).join(' / ')}`);
      return synced.size >= opts.users;
    },
    syncs: () => syncs,
    async stop() {
      child.kill('SIGTERM');
      const t = setTimeout(kill, 70_000);
      await exited;
      clearTimeout(t);
      process.removeListener('exit', kill);
    },
    log: () => lines.join('\n'),
  };
}

/** Dovecot's replicator says nothing is queued and it knows every account. */
let lastStatus = '';
function dovecotQueueEmpty(conf: string, users: number): boolean {
  const r = spawnSync('doveadm', ['-c', conf, 'replicator', 'status'], { encoding: 'utf8' });
  lastStatus = `exit ${r.status}: ${r.stdout}${r.stderr}`.replace(/\s+/g, ' ').trim();
  if (r.status !== 0) return false;
  const queued = [...r.stdout.matchAll(/^Queued .* requests\s+(\d+)\s*$/gm)].map((m) => Number(m[1]));
  const known = Number(/^Total number of known users\s+(\d+)\s*$/m.exec(r.stdout)?.[1] ?? -1);
  return queued.length > 0 && queued.every((n) => n === 0) && known === users;
}

export interface ReplicationSeriesResult { samples: ReplicationSample[]; users: number; rate: number; seconds: number }

export async function runReplicationSeries(opts: {
  ds: UsersDataset; reps: number; rate: number; seconds: number; dovecot: boolean; log: (s: string) => void; tools?: ReplicationTool[];
}): Promise<ReplicationSeriesResult> {
  const { ds, log } = opts;
  const tools = (opts.tools ?? REPLICATION_TOOLS).filter((t) => opts.dovecot || t === 'mailferry-file');
  const owner = mailOwner();
  const series = join(DATA_DIR, 'work', `replication-${ds.users}`);
  mkdirSync(series, { recursive: true });
  const samples: ReplicationSample[] = [];
  for (let rep = 0; rep < opts.reps; rep++) {
    const order = rep % 2 === 0 ? tools : [...tools].reverse();
    for (const tool of order) {
      const s = await runOne({ tool, rep, ds, owner, dir: join(series, `r${rep}`, tool), rate: opts.rate, seconds: opts.seconds, log });
      samples.push(s);
      const st = latencyStats(s.latenciesMs);
      log(`  replication rep ${rep + 1}/${opts.reps} ${tool.padEnd(14)} first syncs ${s.initialSeconds.toFixed(1)} s; ${s.latenciesMs.length}/${s.deliveries} arrived,` +
        ` p50 ${fmt(st.p50, 1)} ms p99 ${fmt(st.p99, 1)} ms max ${fmt(st.max, 1)} ms; CPU ${fmt(s.cpuSeconds, 2)} s (${fmt(perMessageMs(s), 1)} ms/msg)${s.streamSyncs === undefined ? '' : `, ${s.streamSyncs} syncs`}` +
        `${s.problems.length ? `  WRONG: ${s.problems.join('; ').slice(0, 400)}` : ''}`);
    }
  }
  return { samples, users: ds.users, rate: opts.rate, seconds: opts.seconds };
}

async function runOne(o: {
  tool: ReplicationTool; rep: number; ds: UsersDataset; owner: MailOwner; dir: string; rate: number; seconds: number; log: (s: string) => void;
}): Promise<ReplicationSample> {
  const { tool, ds, owner, dir } = o;
  const give = (p: string) => o.owner.root && chownSync(p, owner.uid, owner.gid);
  mkdirSync(dir, { recursive: true });
  workCopy(ds.homes, join(dir, 'home'), owner.root ? owner : undefined);
  const replicas = join(dir, 'replicas');
  mkdirSync(replicas);
  give(replicas);
  for (let k = 1; k <= ds.users; k++) {
    mkdirSync(join(replicas, userName(k)));
    give(join(replicas, userName(k)));
  }
  const home = (k: number) => join(dir, 'home', userName(k));
  const replicaRoot = (k: number) => join(replicas, userName(k), 'Maildir');
  // Unix socket paths are short: the private Dovecots and the cgroup wrapper live under /tmp.
  const tmp = mkdtempSync(join(tmpdir(), 'mailferry-bench-repl-'));
  // Dovecot's mail processes (as the mail user) reach their sockets and the replication fifo below it.
  chmodSync(tmp, 0o755);
  const cpu = new CpuGroups(tmp, `mailferry-bench-${process.pid}-r${o.rep}-${tool}`);
  for (const g of ['repl', 'lmtp', 'other']) cpu.add(g);
  const wrap = { repl: cpu.prefix('repl'), lmtp: cpu.prefix('lmtp') };
  const usersFile = join(dir, 'users');
  writeFileSync(usersFile, Array.from({ length: ds.users }, (_, i) => {
    const u = userName(i + 1);
    const extra = tool === 'dovecot' ? '' : `userdb_mail=maildir:~/Maildir userdb_mail_replica=maildir:${replicas}/%u/Maildir`;
    return `${u}:{PLAIN}pw-${u}:${owner.uid}:${owner.gid}::${home(i + 1)}::${extra}\n`;
  }).join(''));
  const instances: DovecotInstance[] = [];
  let running: Running | undefined;
  let probe: ArrivalProbe | undefined;
  const problems: string[] = [];
  const started = Date.now();
  cpu.mark(['repl']);
  let lmtpPort = 0;
  try {
    if (tool !== 'mailferry-file') {
      lmtpPort = await freePort();
      let replicaPort: number | undefined;
      if (tool === 'dovecot') {
        replicaPort = await freePort();
        const base = join(tmp, 'replica');
        const replica = new DovecotInstance('replica', writeReplicaConf({ base, replicas, owner, port: replicaPort, wrap }), cpu.prefix('other'));
        instances.push(replica);
        await replica.start(join(base, 'run', 'doveadm-server'));
      }
      const base = join(tmp, 'primary');
      const primary = new DovecotInstance(tool === 'dovecot' ? 'primary' : 'LMTP', writePrimaryConf({ base, usersFile, owner, lmtpPort, wrap, replicaPort }), cpu.prefix('other'));
      instances.push(primary);
      await primary.start(join(base, 'run', tool === 'dovecot' ? 'replicator-doveadm' : 'lmtp'));
      if (tool === 'dovecot') {
        const conf = primary.conf;
        running = { firstSyncsDone: () => dovecotQueueEmpty(conf, ds.users), syncs: () => undefined, stop: async () => {}, log: () => '' };
      }
    }
    running ??= startMailferry({ dir, usersFile, users: ds.users, cpu });
    // The first full sync of every account, before the stream.
    const deadline = Date.now() + FIRST_SYNC_TIMEOUT_MS;
    for (;;) {
      if (running.firstSyncsDone() && Array.from({ length: ds.users }, (_, i) => i + 1).every((k) => messagesIn(replicaRoot(k)) >= MESSAGES_PER_USER)) break;
      if (Date.now() > deadline) throw new Error(`${tool}: the first syncs were not done within ${FIRST_SYNC_TIMEOUT_MS / 1000} s${tool === 'dovecot' ? ` (doveadm replicator status: ${lastStatus.slice(0, 300)})` : ''}`);
      await sleep(250);
    }
    const initialSeconds = (Date.now() - started) / 1000;
    const initialCpuSeconds = cpu.since('repl');
    // Let the last first-sync's writes and watcher echoes pass.
    await sleep(2000);
    cpu.mark(['repl', 'lmtp', 'other']);
    const syncsBefore = running.syncs();

    const count = Math.round(o.rate * o.seconds);
    const users = deliveryOrder(ds.users, count, 100 + o.rep);
    const mail = cleanCorpus();
    const busy = new Set<number>();
    const delivered = new Map<number, number>();
    let failedDeliveries = 0;
    const arrivals = new ArrivalProbe(ARRIVAL_TIMEOUT_MS, (a) => busy.delete(Number(a.user.slice(1))));
    probe = arrivals;
    const streamStart = performance.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const wait = streamStart + (i * 1000) / o.rate - performance.now();
      if (wait > 0) await sleep(wait);
      // A message still on its way to its replica keeps its account out of the stream.
      let pick = i;
      while (pick < users.length && busy.has(users[pick]!)) pick++;
      if (pick === users.length) {
        failedDeliveries++;
        continue;
      }
      [users[i], users[pick]] = [users[pick]!, users[i]!];
      const k = users[i]!;
      const u = userName(k);
      busy.add(k);
      delivered.set(k, (delivered.get(k) ?? 0) + 1);
      const body = Buffer.concat([Buffer.from(`X-Bench-Seq: ${o.rep}.${i}\n`), mail[(3000 + i) % mail.length]!]);
      const inbox = replicaRoot(k);
      const base = countMessages(inbox);
      if (tool === 'mailferry-file') {
        const name = `${Math.floor(Date.now() / 1000)}.M${i}P${process.pid}.bench`;
        const t = join(home(k), 'Maildir', 'tmp', name);
        writeFileSync(t, body);
        give(t);
        renameSync(t, join(home(k), 'Maildir', 'new', name));
        arrivals.delivered(i, u, inbox, base);
      } else {
        inFlight.push(lmtpDeliver(lmtpPort, u, body).then(() => arrivals.delivered(i, u, inbox, base), (e: Error) => {
          failedDeliveries++;
          delivered.set(k, delivered.get(k)! - 1);
          if (problems.length < 3) problems.push(e.message);
          arrivals.failed(i, u);
        }));
      }
    }
    await Promise.all(inFlight);
    while (arrivals.inFlight > 0) await sleep(20);
    arrivals.close();
    const streamSeconds = (performance.now() - streamStart) / 1000;
    // Whatever the replication still does for the stream counts too.
    await sleep(2000);
    const syncsAfter = running.syncs();
    const streamSyncs = syncsBefore === undefined || syncsAfter === undefined ? undefined : syncsAfter - syncsBefore;
    const cpuSeconds = cpu.since('repl'), lmtpCpuSeconds = cpu.since('lmtp'), otherCpuSeconds = cpu.since('other');
    const latenciesMs = arrivals.arrivals.filter((a) => a.latencyMs !== undefined).map((a) => a.latencyMs!);
    const lost = arrivals.arrivals.filter((a) => a.latencyMs === undefined).length - failedDeliveries;
    if (lost > 0) problems.push(`${lost} message(s) not in the replica within ${ARRIVAL_TIMEOUT_MS / 1000} s`);
    // Both sides of every account, from disk.
    let wrong = 0;
    for (let k = 1; k <= ds.users; k++) {
      const want = MESSAGES_PER_USER + (delivered.get(k) ?? 0);
      const src = tally(join(home(k), 'Maildir')), dst = tally(replicaRoot(k));
      const have = Object.values(src).reduce((n, t) => n + (t.messages ?? 0), 0);
      if (have !== want || tallyText(src) !== tallyText(dst)) {
        if (++wrong <= 3) problems.push(`${userName(k)}: source ${tallyText(src)} (${want} expected), replica ${tallyText(dst)}`);
      }
    }
    if (wrong > 3) problems.push(`... ${wrong} accounts wrong in all`);
    return {
      tool, rep: o.rep, deliveries: count - failedDeliveries, latenciesMs, lost: Math.max(0, lost), failedDeliveries, initialSeconds, initialCpuSeconds,
      cpuSeconds, lmtpCpuSeconds, otherCpuSeconds, streamSeconds, streamSyncs, cpuMeasured: cpu.available, problems,
    };
  } catch (e) {
    problems.push((e as Error).message.slice(0, 500));
    const log = running?.log().split('\n').slice(-5).join(' / ');
    if (log) problems.push(`log: ${log.slice(0, 500)}`);
    return {
      tool, rep: o.rep, deliveries: 0, latenciesMs: [], lost: 0, failedDeliveries: 0, initialSeconds: (Date.now() - started) / 1000, initialCpuSeconds: undefined,
      cpuSeconds: undefined, lmtpCpuSeconds: undefined, otherCpuSeconds: undefined, streamSeconds: 0, streamSyncs: undefined, cpuMeasured: cpu.available, problems,
    };
  } finally {
    // A run that failed mid-stream leaves its probe's timer and watches behind otherwise, and the benchmark would never exit.
    probe?.close();
    await running?.stop();
    for (const d of instances.reverse()) await d.stop();
    await cpu.remove();
    // A few sockets, configurations and logs, kept when the run went wrong (as the mail under bench/data/work/ is).
    if (problems.length === 0) rmSync(tmp, { recursive: true, force: true });
  }
}

export interface LatencyStats { n: number; p50: number | null; p90: number | null; p99: number | null; max: number | null; mean: number | null }

/** Nearest-rank percentiles, as the reference's script takes them. */
export function latencyStats(ms: number[]): LatencyStats {
  const a = [...ms].sort((x, y) => x - y);
  const pct = (p: number) => (a.length ? a[Math.max(0, Math.ceil((p / 100) * a.length) - 1)]! : null);
  return { n: a.length, p50: pct(50), p90: pct(90), p99: pct(99), max: a.length ? a[a.length - 1]! : null, mean: a.length ? a.reduce((s, x) => s + x, 0) / a.length : null };
}

function perMessageMs(s: ReplicationSample): number | undefined {
  return s.cpuSeconds === undefined || s.latenciesMs.length === 0 ? undefined : (1000 * s.cpuSeconds) / s.latenciesMs.length;
}

const fmt = (v: number | null | undefined, digits: number) => (v == null || !Number.isFinite(v) ? '-' : v.toFixed(digits));

export interface ReplicationToolSummary {
  runs: number;
  correct: number;
  deliveries: number;
  arrived: number;
  /** Over every arrival of the correct runs together. */
  latency: LatencyStats;
  /** Medians over the correct runs. */
  cpuMsPerMessage: number | null;
  cpuSeconds: number | null;
  lmtpCpuSeconds: number | null;
  otherCpuSeconds: number | null;
  initialSeconds: number | null;
  initialCpuSeconds: number | null;
  problems: string[];
}

export interface ReplicationSeriesSummary {
  users: number; rate: number; seconds: number; repetitions: number; cpuGroups: boolean;
  tools: Partial<Record<ReplicationTool, ReplicationToolSummary>>;
  /** Each mailferry variant over Dovecot: p50, p99, CPU per message. */
  ratios: Partial<Record<ReplicationTool, { p50: number | null; p99: number | null; cpu: number | null }>>;
  otherCpu?: { seconds: number; wallSeconds: number };
}

const medianOf = (xs: (number | undefined)[]) => {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length ? median(v) : null;
};

export function summarizeReplication(reps: number, r: ReplicationSeriesResult): ReplicationSeriesSummary {
  const tools: ReplicationSeriesSummary['tools'] = {};
  for (const t of REPLICATION_TOOLS) {
    const mine = r.samples.filter((s) => s.tool === t);
    if (mine.length === 0) continue;
    const good = mine.filter((s) => s.problems.length === 0);
    tools[t] = {
      runs: mine.length, correct: good.length,
      deliveries: good.reduce((n, s) => n + s.deliveries, 0), arrived: good.reduce((n, s) => n + s.latenciesMs.length, 0),
      latency: latencyStats(good.flatMap((s) => s.latenciesMs)),
      cpuMsPerMessage: medianOf(good.map(perMessageMs)), cpuSeconds: medianOf(good.map((s) => s.cpuSeconds)),
      lmtpCpuSeconds: medianOf(good.map((s) => s.lmtpCpuSeconds)), otherCpuSeconds: medianOf(good.map((s) => s.otherCpuSeconds)),
      initialSeconds: medianOf(good.map((s) => s.initialSeconds)), initialCpuSeconds: medianOf(good.map((s) => s.initialCpuSeconds)),
      problems: [...new Set(mine.flatMap((s) => s.problems))].slice(0, 5),
    };
  }
  const dv = tools.dovecot;
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? +(a / b).toFixed(3) : null);
  const ratios: ReplicationSeriesSummary['ratios'] = {};
  for (const t of ['mailferry-file', 'mailferry-lmtp'] as const) {
    const mf = tools[t];
    if (mf) ratios[t] = { p50: ratio(mf.latency.p50, dv?.latency.p50), p99: ratio(mf.latency.p99, dv?.latency.p99), cpu: ratio(mf.cpuMsPerMessage, dv?.cpuMsPerMessage) };
  }
  const cpuGroups = r.samples.some((s) => s.cpuMeasured);
  return { users: r.users, rate: r.rate, seconds: r.seconds, repetitions: reps, cpuGroups, tools, ratios };
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const x = (r: number | null | undefined) => (r == null ? '-' : `${r.toFixed(2)}x`);

export function formatReplication(s: ReplicationSeriesSummary): string {
  const lines = [`== case 11: replication of ${s.users} accounts (20 messages each, first synced before the stream), ${s.rate} deliveries/s for ${s.seconds} s | default settings (mail_fsync=optimized) | ${s.repetitions} repetitions, latencies over all of them ==`];
  if (s.otherCpu && s.otherCpu.seconds > 0.05 * s.otherCpu.wallSeconds) {
    lines.push(`   WARNING: other processes used ${s.otherCpu.seconds} CPU-s during this ${s.otherCpu.wallSeconds} s series (${cpus().length} CPUs): figures are noisy`);
  }
  if (!s.cpuGroups) lines.push('   no writable cpuacct cgroup hierarchy here: CPU figures are missing');
  lines.push([pad('tool (delivery)', 26), lpad('arrived', 9), lpad('p50 ms', 8), lpad('/dv', 6), lpad('p90 ms', 8), lpad('p99 ms', 8), lpad('/dv', 6), lpad('max ms', 8),
    lpad('CPU s', 7), lpad('ms/msg', 7), lpad('/dv', 6), lpad('LMTP CPU s', 11), lpad('first sync s', 13), lpad('its CPU s', 10), lpad('correct', 8)].join(' '));
  const names: Record<ReplicationTool, string> = { 'mailferry-file': 'mailferry (file, MDA)', 'mailferry-lmtp': 'mailferry (Dovecot LMTP)', dovecot: 'Dovecot 2.3 (LMTP)' };
  for (const t of REPLICATION_TOOLS) {
    const v = s.tools[t];
    if (!v) continue;
    const r = s.ratios[t];
    lines.push([pad(names[t], 26), lpad(`${v.arrived}/${v.deliveries}`, 9), lpad(fmt(v.latency.p50, 1), 8), lpad(r ? x(r.p50) : '', 6), lpad(fmt(v.latency.p90, 1), 8),
      lpad(fmt(v.latency.p99, 1), 8), lpad(r ? x(r.p99) : '', 6), lpad(fmt(v.latency.max, 1), 8), lpad(fmt(v.cpuSeconds, 2), 7), lpad(fmt(v.cpuMsPerMessage, 1), 7),
      lpad(r ? x(r.cpu) : '', 6), lpad(t === 'mailferry-file' ? '' : fmt(v.lmtpCpuSeconds, 2), 11), lpad(fmt(v.initialSeconds, 1), 13), lpad(fmt(v.initialCpuSeconds, 2), 10),
      lpad(`${v.correct}/${v.runs}`, 8)].join(' '));
  }
  for (const t of REPLICATION_TOOLS) {
    const v = s.tools[t];
    if (v?.problems.length) lines.push(`   ${t} WRONG in ${v.runs - v.correct} run(s): ${v.problems.join(' | ').slice(0, 600)}`);
  }
  return lines.join('\n');
}

/** True when every run of the series was right. */
export function replicationAllCorrect(s: ReplicationSeriesSummary): boolean {
  return Object.values(s.tools).every((t) => t.correct === t.runs);
}
