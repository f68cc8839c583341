/**
 * Cases 10a-10b: backup of the corpus to a long-running server over TLS on loopback, mailferry
 * against doveadm, as dsync sites run it between their hosts (no ssh, one shared secret):
 *   10a backup into an empty far Maildir, 10b the same backup again (nothing changed).
 *
 *   mailferry: node CLI -o mail_fsync=never -o server_secret_file=SECRET backup maildir:SRC tcps:USER@127.0.0.1:PORT?cafile=CA
 *              to `mailferry server --listen 127.0.0.1:0 --tls-cert --tls-key --secret-file SECRET maildir:~/Maildir`
 *              (a passwd-file userdb, users with nobody's uid as root; mail_fsync=never)
 *   doveadm:   doveadm -c CONF -o mail_location=maildir:SRC -o mail_fsync=never backup -T 60 -s STATE -u USER tcps:127.0.0.1:PORT
 *              to Dovecot's doveadm service, inet_listener with ssl = yes, doveadm_password (server-dovecot.ts)
 * mailferry runs twice per case: with its default deflate on the wire and with dsync_compression=none
 * on the client (deflate is used only when both ends offer it). Every repetition sends as a user
 * never used before, so 10a always writes into an empty home.
 *
 * What is measured per run: wall time of the client; its CPU and peak RSS (GNU time); the CPU of
 * the server's whole process tree during the run (its master and the per-connection processes
 * it starts and reaps, mailferry's spare for the next session included: server-proc.ts); and the bytes over the loopback (both directions, TCP/IP
 * headers included). For the byte count the series runs in a network namespace of its own
 * (unshare -n, as root), where nothing else uses the loopback; elsewhere it is not counted.
 * mailferry's server also logs the bytes of each session's decrypted stream (in=, out=).
 *
 * Every run is checked as case 9: both sides' tallies, `mailferry mailbox status` of both with
 * scratch indexes, and every body at every UID alike on both sides; mailferry's server must also
 * log the session as ok.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { grantDovecotAccess } from '../test/support/dovecot.js';
import { makeCerts } from '../test/support/tls-certs.js';
import { startServer, type ServerProcess } from '../test/server/server-harness.js';
import { checkPair } from './check.js';
import type { Dataset } from './data.js';
import { tally, type Tally } from './maildir-files.js';
import { flushDisks, median, sleep, timeCommand, type Timed } from './measure.js';
import { compareBodies } from './uid-bodies.js';
import { startDoveadmServer, type DoveadmServer } from './server-dovecot.js';
import { loopbackBytes, processTree, settleTree, treeCpuSeconds } from './server-proc.js';
import { CLI } from './tools.js';
import { DATA_DIR, warmCache, workCopy } from './workspace.js';

export type ServerTool = 'mailferry' | 'mailferry-nocomp' | 'doveadm';
const TOOLS = ['mailferry', 'mailferry-nocomp', 'doveadm'] as const;
const SHORT: Record<ServerTool, string> = { mailferry: 'mf', 'mailferry-nocomp': 'mfn', doveadm: 'dv' };

export const SERVER_CASES = [
  { id: '10a', title: 'backup over tcps -> empty Maildir' },
  { id: '10b', title: 'backup over tcps again, nothing changed' },
] as const;

export const SERVER_COMMANDS = {
  mailferry: 'node dist/cli/main.js -o mail_fsync=never -o server_secret_file=SECRET backup maildir:SRC tcps:USER@127.0.0.1:PORT?cafile=CA' +
    ' (server: node dist/cli/main.js -o mail_fsync=never -o userdb=passwd-file:USERS -o first_valid_uid=0 server --listen 127.0.0.1:0 --tls-cert CERT --tls-key KEY --secret-file SECRET maildir:~/Maildir)',
  'mailferry-nocomp': 'as mailferry, with -o dsync_compression=none on the client',
  doveadm: 'doveadm -c CONF -o mail_location=maildir:SRC -o mail_fsync=never backup -T 60 -s STATE -u USER tcps:127.0.0.1:PORT' +
    ' (server: Dovecot\'s doveadm service, inet_listener 127.0.0.1:PORT with ssl = yes, doveadm_password, mail_fsync = never, the same CONF)',
};

export interface ServerSample {
  caseId: string;
  tool: ServerTool;
  rep: number;
  seconds: number;
  clientCpuSeconds: number | undefined;
  clientRssKb: number | undefined;
  serverCpuSeconds: number | undefined;
  /** Loopback bytes, both directions (isolated series only). */
  wireBytes: number | undefined;
  /** mailferry's server: the session's decrypted bytes from and to the client. */
  payloadIn: number | undefined;
  payloadOut: number | undefined;
  code: number;
  attempts: number;
  problems: string[];
  crAltered: number;
}

export interface ServerSeriesResult { samples: ServerSample[]; isolated: boolean }

/** Both tools trust a directory's mtime only once it is a little old (see cases.ts). */
const SETTLE_MS = 2500;
const ROOT = process.getuid?.() === 0;
const NOBODY = 65534;
/** Well over 16 bytes, as server_secret_file asks; doveadm takes it as its doveadm_password. */
const SECRET = 'c0a8e5f2b47d9163e8a1f0d2c4b6a8e0f1d3b5c7';

interface Pair { dir: string; user: string; src: string; dst: string; idx: [string, string]; broken: boolean; state: string }

export async function runServerSeries(opts: { ds: Dataset; reps: number; doveadm: boolean; log: (s: string) => void }): Promise<ServerSeriesResult> {
  const { ds, reps, log } = opts;
  const tools: ServerTool[] = ['mailferry', 'mailferry-nocomp', ...(opts.doveadm ? ['doveadm' as const] : [])];
  const series = join(DATA_DIR, 'work', `server-${ds.name}`);
  mkdirSync(series, { recursive: true });
  const isolated = process.env.MAILFERRY_BENCH_NETNS === '1';
  const base = tally(ds.master);
  const certDir = join(series, 'tls');
  rmSync(certDir, { recursive: true, force: true });
  mkdirSync(certDir, { recursive: true });
  const certs = makeCerts(certDir);
  const secretFile = join(series, 'secret');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  const userdb = join(series, 'users');
  const uid = ROOT ? NOBODY : process.getuid!();
  const gid = ROOT ? NOBODY : process.getgid!();
  const pairsOf = new Map<string, Map<ServerTool, Pair>>();
  const userLines: string[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const m = new Map<ServerTool, Pair>();
    for (const tool of tools) {
      const dir = join(series, `r${rep}`, tool);
      const user = `${SHORT[tool]}-r${rep}`;
      m.set(tool, { dir, user, src: join(dir, 'src'), dst: join(dir, 'home', 'Maildir'), idx: [join(dir, 'check-index-src'), join(dir, 'check-index-dst')], broken: false, state: '' });
      userLines.push(`${user}:x:${uid}:${gid}::${join(dir, 'home')}::\n`);
    }
    pairsOf.set(`r${rep}`, m);
  }
  writeFileSync(userdb, userLines.join(''));
  const samples: ServerSample[] = [];
  let mf: ServerProcess | undefined;
  let dv: DoveadmServer | undefined;
  let lastWrite = Date.now();
  const settle = async () => {
    const wait = lastWrite + SETTLE_MS - Date.now();
    if (wait > 0) await sleep(wait);
  };

  const runOnce = async (tool: ServerTool, p: Pair): Promise<{ t: Timed; serverCpu: number; wire?: number; payload?: [number, number]; serverProblem?: string }> => {
    const serverPid = tool === 'doveadm' ? dv!.masterPid() : mf!.pid;
    const tree = processTree(serverPid);
    const cpu0 = treeCpuSeconds(serverPid);
    const lo0 = isolated ? loopbackBytes() : undefined;
    const logFrom = mf?.lines.length ?? 0;
    let t: Timed;
    if (tool === 'doveadm') {
      t = await timeCommand('doveadm', [
        '-c', dv!.dovecot.configPath, '-o', `mail_location=maildir:${p.src}`, '-o', 'mail_fsync=never',
        'backup', '-T', '60', '-s', p.state, '-u', p.user, `tcps:127.0.0.1:${dv!.port}`,
      ]);
      if (t.code === 0 || t.code === 2) p.state = t.stdout.trim().split('\n').pop() ?? '';
    } else {
      const comp = tool === 'mailferry-nocomp' ? ['-o', 'dsync_compression=none'] : [];
      t = await timeCommand(process.execPath, [
        CLI, '-o', 'mail_fsync=never', ...comp, '-o', `server_secret_file=${secretFile}`,
        'backup', `maildir:${p.src}`, `tcps:${p.user}@127.0.0.1:${mf!.port}?cafile=${certs.ca}`,
      ]);
    }
    let payload: [number, number] | undefined;
    let serverProblem: string | undefined;
    if (tool !== 'doveadm') {
      try {
        const line = await mf!.waitForLine(new RegExp(`^mailferry server: session \\d+ .*user=${p.user} `), { from: logFrom, timeoutMs: 15_000 });
        const m = / in=(\d+) out=(\d+)/.exec(line);
        if (m) payload = [Number(m[1]), Number(m[2])];
        if (!/ result=ok /.test(line)) serverProblem = `server: ${line.slice(0, 300)}`;
      } catch (e) {
        serverProblem = (e as Error).message.split('\n')[0];
      }
    }
    await settleTree(serverPid, tree);
    const lo1 = isolated ? loopbackBytes() : undefined;
    return { t, serverCpu: treeCpuSeconds(serverPid) - cpu0, wire: lo0 !== undefined && lo1 !== undefined ? lo1 - lo0 : undefined, payload, serverProblem };
  };

  try {
    mf = await startServer(
      ['--listen', '127.0.0.1:0', '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--secret-file', secretFile, 'maildir:~/Maildir'],
      { settings: [`userdb=passwd-file:${userdb}`, 'first_valid_uid=0'] },
    );
    if (opts.doveadm) dv = await startDoveadmServer(certs, SECRET);
    for (let rep = 0; rep < reps; rep++) {
      // The tools take turns, the order rotated every repetition.
      const order = tools.map((_, i) => tools[(i + rep) % tools.length]!);
      const pairs = pairsOf.get(`r${rep}`)!;
      for (const tool of order) {
        const p = pairs.get(tool)!;
        mkdirSync(join(p.dir, 'home'), { recursive: true });
        if (tool === 'doveadm') dv!.addUser(p.user, join(p.dir, 'home'));
        // The far side runs as nobody at both servers; doveadm's client drops to nobody too.
        const owner = ROOT ? { uid: NOBODY, gid: NOBODY } : undefined;
        workCopy(ds.master, p.src, tool === 'doveadm' ? owner : undefined);
        if (ROOT) {
          chownSync(join(p.dir, 'home'), NOBODY, NOBODY);
          await grantDovecotAccess(join(p.dir, 'home'));
        }
      }
      lastWrite = Date.now();
      for (const c of SERVER_CASES) {
        await settle();
        for (const tool of order) {
          const p = pairs.get(tool)!;
          if (p.broken) {
            samples.push({ caseId: c.id, tool, rep, seconds: NaN, clientCpuSeconds: undefined, clientRssKb: undefined, serverCpuSeconds: undefined, wireBytes: undefined,
              payloadIn: undefined, payloadOut: undefined, code: -1, attempts: 0, crAltered: 0, problems: ['skipped: an earlier case of this repetition failed'] });
            continue;
          }
          if (c.id === '10a') warmCache(ds.master);
          flushDisks();
          let r = await runOnce(tool, p);
          const sum = { seconds: r.t.seconds, client: r.t.cpuSeconds, rss: r.t.rssKb, server: r.serverCpu, wire: r.wire, pin: r.payload?.[0], pout: r.payload?.[1] };
          const add = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a + b);
          let attempts = 1;
          const serverProblems = r.serverProblem ? [r.serverProblem] : [];
          // Exit 2 is "done, but run again" for both tools: the case costs every run.
          while (r.t.code === 2 && attempts < 3) {
            attempts++;
            r = await runOnce(tool, p);
            if (r.serverProblem) serverProblems.push(r.serverProblem);
            Object.assign(sum, {
              seconds: sum.seconds + r.t.seconds, client: add(sum.client, r.t.cpuSeconds), server: sum.server + r.serverCpu,
              rss: Math.max(sum.rss ?? 0, r.t.rssKb ?? 0) || undefined, wire: add(sum.wire, r.wire), pin: add(sum.pin, r.payload?.[0]), pout: add(sum.pout, r.payload?.[1]),
            });
          }
          lastWrite = Date.now();
          let crAltered = 0;
          const problems = r.t.code === 0 || r.t.code === 2 ? [...serverProblems] : [`exit ${r.t.code}: ${r.t.stderr.trim().split('\n').slice(-2).join(' / ')}`];
          if (problems.length === 0) {
            problems.push(...checkPair(p.src, p.dst, base as Tally, p.idx));
            if (problems.length === 0) {
              const b = compareBodies(p.src, p.dst, base, tool === 'doveadm');
              problems.push(...b.problems);
              crAltered = b.crAltered;
            }
          }
          if (problems.length) p.broken = true;
          samples.push({
            caseId: c.id, tool, rep, seconds: sum.seconds, clientCpuSeconds: sum.client, clientRssKb: sum.rss, serverCpuSeconds: sum.server,
            wireBytes: sum.wire, payloadIn: sum.pin, payloadOut: sum.pout, code: r.t.code, attempts, problems, crAltered,
          });
          log(`  server rep ${rep + 1}/${reps} case ${c.id} ${tool.padEnd(16)} ${sum.seconds.toFixed(3).padStart(8)} s  CPU client ${(sum.client ?? NaN).toFixed(2)} server ${sum.server.toFixed(2)}` +
            `  loopback ${((sum.wire ?? NaN) / 1e6).toFixed(2)} MB${attempts > 1 ? ` (exit 2, ${attempts} runs)` : ''}` +
            `${problems.length ? `  WRONG: ${problems.join('; ').slice(0, 300)}` : ''}`);
        }
      }
    }
  } finally {
    await mf?.stop();
    await dv?.dovecot.stop();
  }
  return { samples, isolated };
}

/** True when this process may make a network namespace of its own (root, or a permissive kernel). */
function canIsolate(): boolean {
  return spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up'], { stdio: 'ignore' }).status === 0;
}

/**
 * Runs the series in a network namespace of its own when it can, so the loopback carries its
 * bytes alone (bench/server-series-main.ts in a child), else here without the byte count.
 */
export async function runServerSeriesIsolated(opts: { ds: Dataset; reps: number; doveadm: boolean; log: (s: string) => void }): Promise<ServerSeriesResult> {
  if (!canIsolate()) {
    opts.log('  (no network namespace of our own here: loopback bytes are not counted)');
    return runServerSeries(opts);
  }
  const out = join(DATA_DIR, 'work', `server-${opts.ds.name}.result.json`);
  rmSync(out, { force: true });
  const main = join(import.meta.dirname, 'server-series-main.ts');
  const child = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh',
    process.execPath, '--import', 'tsx', main, '--data', opts.ds.name, '--reps', String(opts.reps), '--out', out, ...(opts.doveadm ? [] : ['--no-doveadm'])], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, MAILFERRY_BENCH_NETNS: '1' },
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  if (code !== 0) throw new Error(`the case 10 series exited ${code}`);
  return JSON.parse(readFileSync(out, 'utf8')) as ServerSeriesResult;
}

export interface ServerToolSummary {
  medianSeconds: number | null;
  seconds: number[];
  medianClientCpuSeconds: number | null;
  medianServerCpuSeconds: number | null;
  peakClientRssKb: number | null;
  medianWireBytes: number | null;
  medianPayloadIn: number | null;
  medianPayloadOut: number | null;
  runs: number;
  correct: number;
  ranAgain: number;
  problems: string[];
  crAltered: number;
}

export interface ServerCaseSummary {
  id: string;
  title: string;
  tools: Partial<Record<ServerTool, ServerToolSummary>>;
  /** Median wall time of each mailferry variant / doveadm's. */
  ratio: Partial<Record<ServerTool, number | null>>;
  /** Median CPU of client and server together, each mailferry variant / doveadm's. */
  cpuRatio: Partial<Record<ServerTool, number | null>>;
}

export interface ServerSeriesSummary {
  dataset: string; messages: number; bytes: number; folders: number; repetitions: number; isolated: boolean;
  cases: ServerCaseSummary[];
  otherCpu?: { seconds: number; wallSeconds: number };
}

const med = (xs: (number | undefined)[]) => {
  const v = xs.filter((x): x is number => x !== undefined && x !== null && Number.isFinite(x));
  return v.length ? median(v) : null;
};

function summarize(samples: ServerSample[], tool: ServerTool, caseId: string): ServerToolSummary | undefined {
  const mine = samples.filter((s) => s.tool === tool && s.caseId === caseId);
  if (mine.length === 0) return undefined;
  // Only correct runs count: a wrong run's speed means nothing.
  const good = mine.filter((s) => s.problems.length === 0);
  const rss = mine.map((s) => s.clientRssKb).filter((x): x is number => !!x);
  return {
    medianSeconds: med(good.map((s) => s.seconds)), seconds: good.map((s) => s.seconds),
    medianClientCpuSeconds: med(good.map((s) => s.clientCpuSeconds)), medianServerCpuSeconds: med(good.map((s) => s.serverCpuSeconds)),
    peakClientRssKb: rss.length ? Math.max(...rss) : null,
    medianWireBytes: med(good.map((s) => s.wireBytes)), medianPayloadIn: med(good.map((s) => s.payloadIn)), medianPayloadOut: med(good.map((s) => s.payloadOut)),
    runs: mine.length, correct: good.length, ranAgain: mine.filter((s) => s.attempts > 1).length,
    problems: [...new Set(mine.flatMap((s) => s.problems))].slice(0, 5),
    crAltered: Math.max(0, ...mine.map((s) => s.crAltered)),
  };
}

const bothEnds = (t?: ServerToolSummary) => (t?.medianClientCpuSeconds != null && t.medianServerCpuSeconds != null ? t.medianClientCpuSeconds + t.medianServerCpuSeconds : null);

export function summarizeServer(ds: Dataset, reps: number, r: ServerSeriesResult): ServerSeriesSummary {
  return {
    dataset: ds.name, messages: ds.messages, bytes: ds.bytes, folders: ds.folders.length, repetitions: reps, isolated: r.isolated,
    cases: SERVER_CASES.map((c) => {
      const tools: Partial<Record<ServerTool, ServerToolSummary>> = {};
      for (const t of TOOLS) {
        const s = summarize(r.samples, t, c.id);
        if (s) tools[t] = s;
      }
      const dv = tools.doveadm;
      const ratio: ServerCaseSummary['ratio'] = {}, cpuRatio: ServerCaseSummary['cpuRatio'] = {};
      for (const t of ['mailferry', 'mailferry-nocomp'] as const) {
        const mf = tools[t];
        ratio[t] = mf?.medianSeconds && dv?.medianSeconds ? +(mf.medianSeconds / dv.medianSeconds).toFixed(3) : null;
        const a = bothEnds(mf), b = bothEnds(dv);
        cpuRatio[t] = a && b ? +(a / b).toFixed(3) : null;
      }
      return { id: c.id, title: c.title, tools, ratio, cpuRatio };
    }),
  };
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const num = (v: number | null | undefined, digits: number) => (v == null ? '-' : v.toFixed(digits));
const x = (r: number | null | undefined) => (r == null ? '-' : `${r.toFixed(2)}x`);
const kb = (v: number | null | undefined) => (v == null ? '-' : Math.round(v / 1024).toLocaleString('en-US'));

export function formatServer(s: ServerSeriesSummary): string {
  const lines = [`== ${s.dataset} (${s.messages} messages, ${(s.bytes / 1e6).toFixed(1)} MB, ${s.folders} folders) over tcps to a server on 127.0.0.1 | mail_fsync=never on both ends | ${s.repetitions} repetitions, medians ==`];
  if (s.otherCpu && s.otherCpu.seconds > 0.05 * s.otherCpu.wallSeconds) {
    lines.push(`   WARNING: other processes used ${s.otherCpu.seconds} CPU-s during this ${s.otherCpu.wallSeconds} s series (${cpus().length} CPUs): times are noisy`);
  }
  lines.push([pad('case', 44), pad('tool', 16), lpad('wall s', 8), lpad('/dv', 7), lpad('CPU client', 11), lpad('CPU server', 11), lpad('CPU /dv', 8),
    lpad('RSS MB', 7), lpad('loopback KiB', 13), lpad('stream in/out KiB', 18), lpad('correct', 8)].join(' '));
  for (const c of s.cases) {
    for (const [i, t] of TOOLS.entries()) {
      const v = c.tools[t];
      const name = t === 'mailferry-nocomp' ? 'mailferry -none' : t;
      const stream = v?.medianPayloadIn == null ? '-' : `${kb(v.medianPayloadIn)}/${kb(v.medianPayloadOut)}`;
      lines.push([pad(i === 0 ? `${c.id.padEnd(4)}${c.title}` : '', 44), pad(name, 16),
        lpad(v ? (v.medianSeconds == null ? 'FAILED' : v.medianSeconds.toFixed(3)) : 'n/a', 8), lpad(t === 'doveadm' ? '' : x(c.ratio[t]), 7),
        lpad(num(v?.medianClientCpuSeconds, 2), 11), lpad(num(v?.medianServerCpuSeconds, 2), 11), lpad(t === 'doveadm' ? '' : x(c.cpuRatio[t]), 8),
        lpad(num(v?.peakClientRssKb == null ? null : v.peakClientRssKb / 1024, 0), 7), lpad(kb(v?.medianWireBytes), 13), lpad(stream, 18), lpad(v ? `${v.correct}/${v.runs}` : '-', 8)].join(' '));
    }
  }
  if (!s.isolated) lines.push('   loopback bytes not counted: no network namespace of our own here');
  for (const c of s.cases) {
    for (const [name, t] of Object.entries(c.tools)) {
      if (t.crAltered) lines.push(`   case ${c.id} ${name}: ${t.crAltered} message(s) arrived with their carriage returns changed (runs of CR before LF shortened), tolerated for doveadm only`);
      if (t.ranAgain) lines.push(`   case ${c.id} ${name} exited 2 ("run again") in ${t.ranAgain}/${t.runs} repetitions and was run again; its figures are the sums of the runs`);
      if (t.problems.length) lines.push(`   case ${c.id} ${name} WRONG in ${t.runs - t.correct} run(s): ${t.problems.join(' | ').slice(0, 400)}`);
    }
  }
  return lines.join('\n');
}

/** True when every sample of the series was right. */
export function serverAllCorrect(s: ServerSeriesSummary): boolean {
  return s.cases.every((c) => Object.values(c.tools).every((t) => t.correct === t.runs));
}
