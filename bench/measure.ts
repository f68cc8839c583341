/**
 * Timing one tool process: wall time from spawn to exit, and its peak RSS.
 *
 * Peak RSS comes from GNU time (`/usr/bin/time -f '%M %U %S'`, the kernel's ru_maxrss of the
 * waited child, and its CPU time), which costs one extra fork+exec (well under a millisecond) and sees the whole
 * process. Without GNU time we poll /proc/PID/status for VmHWM every 10 ms instead; that can
 * miss a peak reached in the last few milliseconds, so the output says which method was used.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Timed {
  seconds: number;
  rssKb: number | undefined;
  /** User + system CPU seconds of the process and its waited children (GNU time only). */
  cpuSeconds?: number;
  code: number;
  stdout: string;
  stderr: string;
}

const GNU_TIME = '/usr/bin/time';
export const rssMethod: 'gnu-time' | 'proc' = existsSync(GNU_TIME) && spawnSync(GNU_TIME, ['-f', '%M', 'true']).status === 0 ? 'gnu-time' : 'proc';

let seq = 0;

export function timeCommand(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Timed> {
  const rssFile = join(tmpdir(), `mailferry-bench-rss-${process.pid}-${++seq}`);
  const [file, argv] = rssMethod === 'gnu-time' ? [GNU_TIME, ['-o', rssFile, '-f', '%M %U %S', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out: Buffer[] = [], err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let hwm = 0;
    const poll = rssMethod === 'proc' ? setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwm = Math.max(hwm, Number(m[1]));
      } catch { /* exited between polls */ }
    }, 10) : undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 1_800_000);
    let seconds = 0;
    // 'exit' is when the process is gone; 'close' (later) also waits for its pipes to drain.
    child.on('exit', () => (seconds = Number(process.hrtime.bigint() - start) / 1e9));
    child.on('error', (e) => (clearTimeout(timer), clearInterval(poll), reject(e)));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(poll);
      let rssKb: number | undefined = hwm || undefined;
      let cpuSeconds: number | undefined;
      if (rssMethod === 'gnu-time') {
        try {
          // GNU time writes "Command exited with non-zero status N" first when it did.
          const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
          const [kb, user, sys] = (lines[lines.length - 1] ?? '').split(' ').map(Number);
          rssKb = kb || undefined;
          if (Number.isFinite(user) && Number.isFinite(sys)) cpuSeconds = user! + sys!;
        } catch { /* killed before time wrote it */ }
        rmSync(rssFile, { force: true });
      }
      resolve({
        seconds, rssKb, cpuSeconds, code: code ?? (signal ? 128 : -1),
        stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/**
 * `node -e 0` timed exactly as a tool run is (same spawn, same GNU time wrapper), just before a
 * no-op mailferry run: Node's own start-up on this machine at this moment, which no change to
 * mailferry can remove. What mailferry spends beyond it is what is ours to cut.
 */
export async function nodeStartSeconds(): Promise<number> {
  return (await timeCommand(process.execPath, ['-e', '0'])).seconds;
}

/** A no-op case's median `node -e 0` and mailferry's median time beyond it, in ms (null without both). */
export interface BeyondNodeStart { nodeStartMs: number | null; beyondNodeStartMs: number | null }

export function beyondNodeStart(mailferrySeconds: number[], nodeSeconds: number[]): BeyondNodeStart {
  if (mailferrySeconds.length === 0 || nodeSeconds.length === 0) return { nodeStartMs: null, beyondNodeStartMs: null };
  const node = median(nodeSeconds) * 1000;
  return { nodeStartMs: +node.toFixed(1), beyondNodeStartMs: +(median(mailferrySeconds) * 1000 - node).toFixed(1) };
}

/** The line printed under a table for its no-op cases. */
export function formatBeyondNodeStart(rows: { id: string; nodeStartMs?: number | null; beyondNodeStartMs?: number | null }[]): string[] {
  const shown = rows.filter((r) => r.nodeStartMs != null && r.beyondNodeStartMs != null);
  if (shown.length === 0) return [];
  return [`   no-op cases, median ms: ${shown.map((r) => `${r.id} node -e 0 ${r.nodeStartMs!.toFixed(1)}, mailferry beyond it ${r.beyondNodeStartMs!.toFixed(1)}`).join('; ')}`];
}

/** Flush dirty pages so one tool's writeback does not land in the other's timed run. */
export function flushDisks(): void {
  spawnSync('sync');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * CPU time used by processes outside this benchmark's own process tree (and outside the kernel's
 * threads) while it runs, sampled from /proc every second. Another engineer's test suite on
 * these 2 CPUs would slow both tools and blur the ratios; this says when that happened. A process
 * that lives less than a second between two samples is missed, so it is a lower bound.
 */
export class ForeignCpu {
  private last = new Map<number, number>();
  private ticks = 0;
  private timer: NodeJS.Timeout | undefined;
  private startTicks = 0;

  start(): void {
    this.startTicks = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100;
    this.sample(true);
    this.timer = setInterval(() => this.sample(false), 1000);
    this.timer.unref();
  }

  /** CPU seconds used by others since start() (assumes USER_HZ = 100, as on every Linux port). */
  stop(): number {
    this.sample(false);
    clearInterval(this.timer);
    return this.ticks / 100;
  }

  private sample(first: boolean): void {
    const procs: { pid: number; ppid: number; cpu: number; started: number }[] = [];
    let names: string[];
    try { names = readdirSync('/proc'); } catch { return; }
    for (const name of names) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        // Fields after the ")" closing the command name: state ppid ... utime(14) stime(15) ... starttime(22).
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        procs.push({ pid: Number(name), ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]), started: Number(f[19]) });
      } catch { /* gone */ }
    }
    const parent = new Map(procs.map((p) => [p.pid, p.ppid]));
    const ours = (pid: number): boolean => {
      for (let p: number | undefined = pid, n = 0; p && n < 64; p = parent.get(p), n++) if (p === process.pid) return true;
      return false;
    };
    for (const p of procs) {
      if (p.pid === 2 || p.ppid === 2 || ours(p.pid)) continue; // kernel threads, or us
      // First seen: count what it used since we started, all of it if it began after us.
      const prev = this.last.get(p.pid) ?? (first || p.started < this.startTicks ? p.cpu : 0);
      this.ticks += Math.max(0, p.cpu - prev);
      this.last.set(p.pid, p.cpu);
    }
  }
}
