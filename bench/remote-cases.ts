/**
 * Cases 9a-9c: backup and sync to a Maildir on "another host" over ssh, mailferry vs doveadm,
 * both through the same throwaway sshd on 127.0.0.1 (test/support/sshd.ts), logging in as the
 * user running the bench:
 *   9a backup of the corpus into an empty far Maildir, 9b the same backup again (nothing changed),
 *   9c sync after 1% changes on each side (bench/changes.ts, made behind both tools' backs).
 *
 *   mailferry: node CLI -o mail_fsync=never -o dsync_remote_cmd=RCMD backup|sync maildir:SRC remote:LOGIN@127.0.0.1:maildir:DST
 *              RCMD = ssh OPTS -l%{login} %{host} FARTIME node CLI -o mail_fsync=never dsync-server
 *   doveadm:   doveadm -c CONF -o mail_location=maildir:SRC -o mail_fsync=never -o dsync_remote_cmd=RCMD backup|sync -s STATE -u alice remote:LOGIN@127.0.0.1
 *              RCMD = ssh OPTS -l%{login} %{host} FARTIME doveadm -c CONF -o mail_location=maildir:DST -o mail_fsync=never dsync-server -u alice
 * mailferry runs twice per case: with its default deflate on the wire and with dsync_compression=none
 * (on both ends). doveadm's dsync over a command's pipes is never compressed.
 *
 * What is measured per run: wall time of the local tool; its CPU (GNU time, including the ssh
 * client it waits for); the far command's CPU and peak RSS (FARTIME: GNU time around the far
 * command, written to a file on exit); and the bytes ssh put on the wire in each direction (ssh's
 * own "Transferred: sent N, received M bytes", logged at LogLevel VERBOSE to a file by -E). sshd's
 * own session process is in neither CPU column: it costs both tools alike per byte.
 *
 * Every run is checked: both sides' tallies (messages, flags and keywords per mailbox) against
 * what the case must produce, `mailferry mailbox status` of both sides with scratch indexes
 * (UIDVALIDITY, UIDNEXT, mailbox GUID), and the body of every message, by UID, alike on both sides.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { grantDovecotAccess, type Dovecot } from '../test/support/dovecot.js';
import { startSshd, type Sshd } from '../test/support/sshd.js';
import { applyChanges, applyDelta, planChanges } from './changes.js';
import { checkPair } from './check.js';
import type { Dataset } from './data.js';
import { tally, type Tally } from './maildir-files.js';
import { flushDisks, median, sleep, timeCommand, type Timed } from './measure.js';
import { CLI } from './tools.js';
import { DATA_DIR, warmCache, workCopy } from './workspace.js';
import { compareBodies } from './uid-bodies.js';

export type RemoteTool = 'mailferry' | 'mailferry-nocomp' | 'doveadm';
type Op = 'backup' | 'sync';

export const REMOTE_CASES = [
  { id: '9a', title: 'backup over ssh -> empty Maildir', op: 'backup' as Op },
  { id: '9b', title: 'backup over ssh again, nothing changed', op: 'backup' as Op },
  { id: '9c', title: 'sync over ssh after 1% changes on each side', op: 'sync' as Op },
] as const;

export const REMOTE_COMMANDS = {
  mailferry: 'node dist/cli/main.js -o mail_fsync=never -o dsync_remote_cmd="ssh OPTS -l%{login} %{host} FARTIME node dist/cli/main.js -o mail_fsync=never dsync-server" backup|sync maildir:SRC remote:LOGIN@127.0.0.1:maildir:DST',
  'mailferry-nocomp': 'as mailferry, with -o dsync_compression=none on both ends',
  doveadm: 'doveadm -c CONF -o mail_location=maildir:SRC -o mail_fsync=never -o dsync_remote_cmd="ssh OPTS -l%{login} %{host} FARTIME doveadm -c CONF -o mail_location=maildir:DST -o mail_fsync=never dsync-server -u alice" backup|sync -s STATE -u alice remote:LOGIN@127.0.0.1',
};

export interface RemoteSample {
  caseId: string;
  tool: RemoteTool;
  rep: number;
  seconds: number;
  localCpuSeconds: number | undefined;
  localRssKb: number | undefined;
  farCpuSeconds: number | undefined;
  farRssKb: number | undefined;
  sentBytes: number | undefined;
  receivedBytes: number | undefined;
  code: number;
  attempts: number;
  problems: string[];
  /** Bodies alike on both sides but for their carriage returns (allowed for doveadm only, see compareBodies). */
  crAltered: number;
}

/** Far-side GNU time: a script, since '%' in dsync_remote_cmd is expanded by both tools. */
const FARTIME = `#!/bin/sh
out=$1; shift
exec /usr/bin/time -o "$out" -f '%e %U %S %M' "$@"
`;

interface FarRun { seconds: number; cpu: number; rssKb: number }

function readFarTime(file: string): FarRun | undefined {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const [e, u, s, m] = (lines[lines.length - 1] ?? '').split(' ').map(Number);
    return Number.isFinite(u) && Number.isFinite(s) ? { seconds: e!, cpu: u! + s!, rssKb: m! } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * ssh's own count at LogLevel VERBOSE (-E FILE): "Transferred: sent N, received M bytes", the
 * encrypted bytes on the wire. sshd 9.2 logs no such line at VERBOSE. An ssh ended by a signal
 * logs nothing either: that run's bytes are shown as unmeasured ("-"), never guessed.
 */
function readWire(file: string): { sent: number; received: number } | undefined {
  try {
    const m = /Transferred: sent (\d+), received (\d+) bytes/.exec(readFileSync(file, 'utf8'));
    return m ? { sent: Number(m[1]), received: Number(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

interface Pair { dir: string; src: string; dst: string; idx: [string, string]; expected: Tally; broken: boolean; state: string }

/**
 * Both tools trust a directory's mtime only once it is a little old (see cases.ts): every timed
 * run starts at least this long after the last write.
 */
const SETTLE_MS = 2500;

export interface RemoteSeriesResult { samples: RemoteSample[]; changesPerSide: number; login: string }

export async function runRemoteSeries(opts: {
  ds: Dataset; reps: number; dovecot?: Dovecot; log: (s: string) => void;
}): Promise<RemoteSeriesResult> {
  const { ds, reps, dovecot, log } = opts;
  const tools: RemoteTool[] = ['mailferry', 'mailferry-nocomp', ...(dovecot ? ['doveadm' as const] : [])];
  const series = join(DATA_DIR, 'work', `remote-${ds.name}`);
  mkdirSync(series, { recursive: true });
  const fartime = join(series, 'fartime.sh');
  writeFileSync(fartime, FARTIME, { mode: 0o755 });
  chmodSync(fartime, 0o755);
  const base = tally(ds.master);
  const plan = planChanges(ds.master, 0.01, 7);
  const samples: RemoteSample[] = [];
  const sshd: Sshd = await startSshd();
  // The ssh client logs its byte count at VERBOSE; the harness's ERROR would hide it.
  const sshArgv = (log: string) => ['ssh', ...sshd.sshOptions.map((o) => (o === 'LogLevel=ERROR' ? 'LogLevel=VERBOSE' : o)), '-E', log];
  let lastWrite = Date.now();
  const settle = async () => {
    const wait = lastWrite + SETTLE_MS - Date.now();
    if (wait > 0) await sleep(wait);
  };

  const runOnce = async (tool: RemoteTool, op: Op, p: Pair, tag: string): Promise<{ t: Timed; far?: FarRun; wire?: { sent: number; received: number } }> => {
    const farFile = join(p.dir, `${tag}.fartime`), sshLog = join(p.dir, `${tag}.ssh.log`);
    rmSync(farFile, { force: true });
    rmSync(sshLog, { force: true });
    let t: Timed;
    if (tool === 'doveadm') {
      const far = [fartime, farFile, 'doveadm', '-c', dovecot!.configPath, '-o', `mail_location=maildir:${p.dst}`, '-o', 'mail_fsync=never', 'dsync-server', '-u', 'alice'];
      const rcmd = [...sshArgv(sshLog), '-l%{login}', '%{host}', ...far].join(' ');
      t = await timeCommand('doveadm', [
        '-c', dovecot!.configPath, '-o', `mail_location=maildir:${p.src}`, '-o', 'mail_fsync=never', '-o', `dsync_remote_cmd=${rcmd}`,
        op, '-s', p.state, '-u', 'alice', `remote:${sshd.login}@${sshd.host}`,
      ]);
      if (t.code === 0 || t.code === 2) p.state = t.stdout.trim().split('\n').pop() ?? '';
    } else {
      const comp = tool === 'mailferry-nocomp' ? ['-o', 'dsync_compression=none'] : [];
      const far = [fartime, farFile, process.execPath, CLI, '-o', 'mail_fsync=never', ...comp, 'dsync-server'];
      const rcmd = [...sshArgv(sshLog), '-l%{login}', '%{host}', ...far].join(' ');
      t = await timeCommand(process.execPath, [
        CLI, '-o', 'mail_fsync=never', ...comp, '-o', `dsync_remote_cmd=${rcmd}`,
        op, `maildir:${p.src}`, `remote:${sshd.login}@${sshd.host}:maildir:${p.dst}`,
      ]);
    }
    return { t, far: readFarTime(farFile), wire: readWire(sshLog) };
  };

  try {
    for (let rep = 0; rep < reps; rep++) {
      // The tools take turns, the order rotated every repetition.
      const order = tools.map((_, i) => tools[(i + rep) % tools.length]!);
      const pairs = new Map<RemoteTool, Pair>();
      for (const tool of order) {
        const dir = join(series, `r${rep}`, tool);
        mkdirSync(dir, { recursive: true });
        // doveadm drops to nobody on both ends: its copy, and the directory DST is made in, must be nobody's.
        if (tool === 'doveadm') await grantDovecotAccess(dir);
        const owner = tool === 'doveadm' && process.getuid?.() === 0 ? (() => {
          const f = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((x) => x[0] === 'nobody')!;
          return { uid: Number(f[2]), gid: Number(f[3]) };
        })() : undefined;
        workCopy(ds.master, join(dir, 'src'), owner);
        pairs.set(tool, { dir, src: join(dir, 'src'), dst: join(dir, 'dst'), idx: [join(dir, 'check-index-src'), join(dir, 'check-index-dst')], expected: base, broken: false, state: '' });
      }
      lastWrite = Date.now();
      for (const c of REMOTE_CASES) {
        if (c.id === '9c') {
          await settle();
          for (const tool of order) {
            const p = pairs.get(tool)!;
            if (!p.broken) p.expected = applyDelta(base, applyChanges(p.src, plan.src), applyChanges(p.dst, plan.dst));
          }
          lastWrite = Date.now();
        }
        await settle();
        for (const tool of order) {
          const p = pairs.get(tool)!;
          if (p.broken) {
            samples.push({ caseId: c.id, tool, rep, seconds: NaN, localCpuSeconds: undefined, localRssKb: undefined, farCpuSeconds: undefined, farRssKb: undefined,
              sentBytes: undefined, receivedBytes: undefined, code: -1, attempts: 0, crAltered: 0, problems: ['skipped: an earlier case of this repetition failed'] });
            continue;
          }
          if (c.id === '9a') warmCache(ds.master);
          flushDisks();
          let r = await runOnce(tool, c.op, p, `${c.id}-1`);
          const sum = { seconds: r.t.seconds, local: r.t.cpuSeconds, localRss: r.t.rssKb, far: r.far?.cpu, farRss: r.far?.rssKb, sent: r.wire?.sent, received: r.wire?.received };
          let attempts = 1;
          // Exit 2 is "done, but run again" for both tools: the case costs every run.
          while (r.t.code === 2 && attempts < 3) {
            r = await runOnce(tool, c.op, p, `${c.id}-${++attempts}`);
            const add = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a + b);
            Object.assign(sum, {
              seconds: sum.seconds + r.t.seconds, local: add(sum.local, r.t.cpuSeconds), far: add(sum.far, r.far?.cpu),
              localRss: Math.max(sum.localRss ?? 0, r.t.rssKb ?? 0) || undefined, farRss: Math.max(sum.farRss ?? 0, r.far?.rssKb ?? 0) || undefined,
              sent: add(sum.sent, r.wire?.sent), received: add(sum.received, r.wire?.received),
            });
          }
          lastWrite = Date.now();
          let crAltered = 0;
          const problems = r.t.code === 0 || r.t.code === 2 ? [] : [`exit ${r.t.code}: ${r.t.stderr.trim().split('\n').slice(-2).join(' / ')}`];
          if (problems.length === 0) {
            problems.push(...checkPair(p.src, p.dst, p.expected, p.idx));
            if (problems.length === 0) {
              const b = compareBodies(p.src, p.dst, p.expected, tool === 'doveadm');
              problems.push(...b.problems);
              crAltered = b.crAltered;
            }
          }
          if (problems.length) p.broken = true;
          samples.push({
            caseId: c.id, tool, rep, seconds: sum.seconds, localCpuSeconds: sum.local, localRssKb: sum.localRss, farCpuSeconds: sum.far, farRssKb: sum.farRss,
            sentBytes: sum.sent, receivedBytes: sum.received, code: r.t.code, attempts, problems, crAltered,
          });
          log(`  remote rep ${rep + 1}/${reps} case ${c.id} ${tool.padEnd(16)} ${sum.seconds.toFixed(3).padStart(8)} s  CPU local ${(sum.local ?? NaN).toFixed(2)} far ${(sum.far ?? NaN).toFixed(2)}` +
            `  ssh sent ${((sum.sent ?? NaN) / 1e6).toFixed(2)} MB recv ${((sum.received ?? NaN) / 1e6).toFixed(2)} MB${attempts > 1 ? ` (exit 2, ${attempts} runs)` : ''}` +
            `${problems.length ? `  WRONG: ${problems.join('; ').slice(0, 300)}` : ''}`);
        }
      }
    }
  } finally {
    await sshd.stop();
  }
  return { samples, changesPerSide: plan.perSide, login: sshd.login };
}

export interface RemoteToolSummary {
  medianSeconds: number | null;
  seconds: number[];
  medianLocalCpuSeconds: number | null;
  medianFarCpuSeconds: number | null;
  peakLocalRssKb: number | null;
  peakFarRssKb: number | null;
  medianSentBytes: number | null;
  medianReceivedBytes: number | null;
  runs: number;
  correct: number;
  ranAgain: number;
  problems: string[];
  /** Most bodies found altered in their carriage returns in one run. */
  crAltered: number;
}

export interface RemoteCaseSummary {
  id: string;
  title: string;
  tools: Partial<Record<RemoteTool, RemoteToolSummary>>;
  /** Median wall time of each mailferry variant / doveadm's. */
  ratio: Partial<Record<RemoteTool, number | null>>;
  /** Median CPU of both ends together, each mailferry variant / doveadm's. */
  cpuRatio: Partial<Record<RemoteTool, number | null>>;
}

export interface RemoteSeriesSummary {
  dataset: string; messages: number; bytes: number; folders: number; repetitions: number; changesPerSide: number; login: string;
  cases: RemoteCaseSummary[];
  otherCpu?: { seconds: number; wallSeconds: number };
}

const med = (xs: (number | undefined)[]) => {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length ? median(v) : null;
};
const peak = (xs: (number | undefined)[]) => {
  const v = xs.filter((x): x is number => !!x);
  return v.length ? Math.max(...v) : null;
};

function summarize(samples: RemoteSample[], tool: RemoteTool, caseId: string): RemoteToolSummary | undefined {
  const mine = samples.filter((s) => s.tool === tool && s.caseId === caseId);
  if (mine.length === 0) return undefined;
  // Only correct runs count: a wrong run's speed means nothing.
  const good = mine.filter((s) => s.problems.length === 0);
  return {
    medianSeconds: med(good.map((s) => s.seconds)), seconds: good.map((s) => s.seconds),
    medianLocalCpuSeconds: med(good.map((s) => s.localCpuSeconds)), medianFarCpuSeconds: med(good.map((s) => s.farCpuSeconds)),
    peakLocalRssKb: peak(mine.map((s) => s.localRssKb)), peakFarRssKb: peak(mine.map((s) => s.farRssKb)),
    medianSentBytes: med(good.map((s) => s.sentBytes)), medianReceivedBytes: med(good.map((s) => s.receivedBytes)),
    runs: mine.length, correct: good.length, ranAgain: mine.filter((s) => s.attempts > 1).length,
    problems: [...new Set(mine.flatMap((s) => s.problems))].slice(0, 5),
    crAltered: Math.max(0, ...mine.map((s) => s.crAltered)),
  };
}

const bothEnds = (t?: RemoteToolSummary) => (t?.medianLocalCpuSeconds != null && t.medianFarCpuSeconds != null ? t.medianLocalCpuSeconds + t.medianFarCpuSeconds : null);

export function summarizeRemote(ds: Dataset, reps: number, r: RemoteSeriesResult): RemoteSeriesSummary {
  return {
    dataset: ds.name, messages: ds.messages, bytes: ds.bytes, folders: ds.folders.length, repetitions: reps, changesPerSide: r.changesPerSide, login: r.login,
    cases: REMOTE_CASES.map((c) => {
      const tools: Partial<Record<RemoteTool, RemoteToolSummary>> = {};
      for (const t of ['mailferry', 'mailferry-nocomp', 'doveadm'] as const) {
        const s = summarize(r.samples, t, c.id);
        if (s) tools[t] = s;
      }
      const dv = tools.doveadm;
      const ratio: RemoteCaseSummary['ratio'] = {}, cpuRatio: RemoteCaseSummary['cpuRatio'] = {};
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

export function formatRemote(s: RemoteSeriesSummary): string {
  const lines = [`== ${s.dataset} (${s.messages} messages, ${(s.bytes / 1e6).toFixed(1)} MB, ${s.folders} folders) over ssh to 127.0.0.1 (one sshd, login ${s.login}) | mail_fsync=never on both ends | ${s.repetitions} repetitions, medians ==`];
  if (s.otherCpu && s.otherCpu.seconds > 0.05 * s.otherCpu.wallSeconds) {
    lines.push(`   WARNING: other processes used ${s.otherCpu.seconds} CPU-s during this ${s.otherCpu.wallSeconds} s series (${cpus().length} CPUs): times are noisy`);
  }
  lines.push([pad('case', 46), pad('tool', 17), lpad('wall s', 8), lpad('/dv', 7), lpad('CPU local', 10), lpad('CPU far', 8), lpad('CPU /dv', 8),
    lpad('RSS MB l/f', 11), lpad('ssh sent KiB', 13), lpad('recv KiB', 9), lpad('correct', 8)].join(' '));
  for (const c of s.cases) {
    for (const [i, t] of (['mailferry', 'mailferry-nocomp', 'doveadm'] as const).entries()) {
      const v = c.tools[t];
      const name = t === 'mailferry-nocomp' ? 'mailferry -none' : t;
      const rss = `${num(v?.peakLocalRssKb == null ? null : v.peakLocalRssKb / 1024, 0)}/${num(v?.peakFarRssKb == null ? null : v.peakFarRssKb / 1024, 0)}`;
      lines.push([pad(i === 0 ? `${c.id.padEnd(3)}${c.title}` : '', 46), pad(name, 17),
        lpad(v ? (v.medianSeconds == null ? 'FAILED' : v.medianSeconds.toFixed(3)) : 'n/a', 8), lpad(t === 'doveadm' ? '' : x(c.ratio[t]), 7),
        lpad(num(v?.medianLocalCpuSeconds, 2), 10), lpad(num(v?.medianFarCpuSeconds, 2), 8), lpad(t === 'doveadm' ? '' : x(c.cpuRatio[t]), 8),
        lpad(rss, 11), lpad(kb(v?.medianSentBytes), 13), lpad(kb(v?.medianReceivedBytes), 9), lpad(v ? `${v.correct}/${v.runs}` : '-', 8)].join(' '));
    }
  }
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
export function remoteAllCorrect(s: RemoteSeriesSummary): boolean {
  return s.cases.every((c) => Object.values(c.tools).every((t) => t.correct === t.runs));
}

