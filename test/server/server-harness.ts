/**
 * A real `mailferry server` process for the tests (this checkout's built CLI, on a loopback port
 * it picks itself), its log lines as they come, and the CLI as a client of it. Every server
 * started here is killed when the test process exits, however it exits short of SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

export interface LogLine {
  text: string;
  /** When the test received it. */
  at: number;
}

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  lines: LogLine[];
  /** Resolves with the first line at or after `from` (an index into lines) matching `re`. */
  waitForLine(re: RegExp, opts?: { from?: number; timeoutMs?: number }): Promise<string>;
  /** The session lines (`session N peer=...`), in order. */
  sessionLines(): string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resident memory in KiB, from /proc. */
  rssKb(): number;
}

const live = new Set<ChildProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

export interface StartOptions {
  /** `-o setting=value` pairs, before the command. */
  settings?: string[];
  env?: NodeJS.ProcessEnv;
  /** Echo the server's log to this process's stderr (debugging). */
  echo?: boolean;
}

/** Starts `mailferry server ARGS` (give --listen 127.0.0.1:0 for a free port) and waits until it listens. */
export async function startServer(args: readonly string[], opts: StartOptions = {}): Promise<ServerProcess> {
  hookExit();
  const settings = (opts.settings ?? []).flatMap((s) => ['-o', s]);
  const child = spawn(process.execPath, [CLI, '-o', 'mail_fsync=never', ...settings, 'server', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  live.add(child);
  const lines: LogLine[] = [];
  const watchers = new Set<() => void>();
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (t: string) => {
    const parts = (partial + t).split('\n');
    partial = parts.pop()!;
    for (const p of parts) {
      lines.push({ text: p, at: Date.now() });
      if (opts.echo) process.stderr.write(`[server] ${p}\n`);
    }
    for (const w of watchers) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(child);
      for (const w of watchers) w();
      resolve({ code, signal });
    }),
  );
  const waitForLine = (re: RegExp, o: { from?: number; timeoutMs?: number } = {}) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hit = lines.slice(o.from ?? 0).find((l) => re.test(l.text));
        if (hit) {
          done();
          resolve(hit.text);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          done();
          reject(new Error(`the server exited without logging ${re}:\n${lines.map((l) => l.text).join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no server log line ${re} within ${o.timeoutMs ?? 20_000} ms:\n${lines.map((l) => l.text).join('\n')}`));
      }, o.timeoutMs ?? 20_000);
      const done = () => {
        clearTimeout(timer);
        watchers.delete(check);
      };
      watchers.add(check);
      check();
    });
  const listening = await waitForLine(/listening on /);
  const port = Number(/:(\d+) \(/.exec(listening)?.[1] ?? /:(\d+)[,)]/.exec(listening)?.[1]);
  return {
    child,
    pid: child.pid!,
    port,
    lines,
    waitForLine,
    sessionLines: () => lines.map((l) => l.text).filter((t) => /^mailferry server: session \d+ peer=/.test(t)),
    exited,
    async stop(graceMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
    rssKb() {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return Number(m?.[1] ?? 0);
    },
  };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface ClientRun extends Promise<Run> {
  child: ChildProcess;
}

/** The CLI as a client; `settings` are `-o` pairs. */
export function mf(args: readonly string[], opts: { settings?: string[]; env?: NodeJS.ProcessEnv } = {}): ClientRun {
  const settings = (opts.settings ?? []).flatMap((s) => ['-o', s]);
  const t0 = Date.now();
  const child = spawn(process.execPath, [CLI, '-o', 'mail_fsync=never', ...settings, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const p = new Promise<Run>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code: code ?? 128 + (signal === 'SIGKILL' ? 9 : 15), stdout, stderr, ms: Date.now() - t0 });
    }),
  ) as ClientRun;
  p.child = child;
  return p;
}

/** The lines a run wrote to stderr that are mailferry's own. */
export function errorLines(r: Run): string[] {
  return r.stderr.split('\n').filter((l) => l.startsWith('mailferry:'));
}

/** Polls until `fn` is true. */
export async function until(fn: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
