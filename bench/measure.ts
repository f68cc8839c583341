/**
 * Timing one tool process: wall time from spawn to exit, and its peak RSS.
 *
 * Peak RSS comes from GNU time (`/usr/bin/time -f %M`, the kernel's ru_maxrss of the waited
 * child), which costs one extra fork+exec (well under a millisecond) and sees the whole
 * process. Without GNU time we poll /proc/PID/status for VmHWM every 10 ms instead; that can
 * miss a peak reached in the last few milliseconds, so the output says which method was used.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Timed {
  seconds: number;
  rssKb: number | undefined;
  code: number;
  stdout: string;
  stderr: string;
}

const GNU_TIME = '/usr/bin/time';
export const rssMethod: 'gnu-time' | 'proc' = existsSync(GNU_TIME) && spawnSync(GNU_TIME, ['-f', '%M', 'true']).status === 0 ? 'gnu-time' : 'proc';

let seq = 0;

export function timeCommand(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Timed> {
  const rssFile = join(tmpdir(), `mailferry-bench-rss-${process.pid}-${++seq}`);
  const [file, argv] = rssMethod === 'gnu-time' ? [GNU_TIME, ['-o', rssFile, '-f', '%M', cmd, ...args]] : [cmd, args];
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
      if (rssMethod === 'gnu-time') {
        try {
          const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
          rssKb = Number(lines[lines.length - 1]) || undefined;
        } catch { /* killed before time wrote it */ }
        rmSync(rssFile, { force: true });
      }
      resolve({
        seconds, rssKb, code: code ?? (signal ? 128 : -1),
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

/** Flush dirty pages so one tool's writeback does not land in the other's timed run. */
export function flushDisks(): void {
  spawnSync('sync');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Microseconds per empty-file creation in dir (the files stay: deleting them would slow the next creates). */
function createCostUs(dir: string, n = 300): number {
  mkdirSync(dir, { recursive: true });
  const tag = `${Date.now()}-${++seq}`;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) writeFileSync(join(dir, `${tag}-${i}`), '');
  return Number(process.hrtime.bigint() - start) / 1e3 / n;
}

/**
 * This VM's ext4 has no journal, and then ext4 avoids reusing inodes deleted in the last 1-6
 * minutes by scanning past them, which made file creation 10-30x slower (seen with perf:
 * recently_deleted()). Both tools create a file per message, so wait until creation is cheap
 * again (at most maxSeconds) before measuring. Returns the final cost and the seconds waited.
 */
export async function waitForCheapCreates(dir: string, log: (s: string) => void, maxSeconds = 420): Promise<{ us: number; waited: number }> {
  const start = Date.now();
  for (;;) {
    const us = createCostUs(dir);
    const waited = (Date.now() - start) / 1000;
    if (us < 120 || waited > maxSeconds) return { us, waited };
    log(`file creation costs ${us.toFixed(0)} µs (normal: ~30 µs; recently deleted inodes?), waiting ... (${waited.toFixed(0)} s so far)`);
    await sleep(15_000);
  }
}
