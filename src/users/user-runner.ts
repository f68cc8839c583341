/**
 * Runs a backup or sync for many users: up to `jobs` at once, each in a worker process (so a
 * user's run can take that user's uid, and SQLite work of one user does not stall the
 * others). Users are pulled from the selection one at a time as workers come free: nothing
 * holds the whole list. One user's failure, even a crashed worker, never stops the others.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { exitCodeOf, MailferryError } from '../model/errors.js';
import type { Settings } from '../config/settings.js';
import type { RunCounts } from '../cli/summary.js';
import { resolveUserRun, UserSkipped, type UserRunRequest } from './user-run-spec.js';
import type { SelectedUser } from './user-selection.js';
import type { PairCommand, WorkerReply, WorkerRequest } from './worker-messages.js';

export interface UserResult {
  user: string;
  /** ok, 2 (run again or incomplete), a failure's exit status, or skipped (noreplicate). */
  status: 'ok' | 'incomplete' | 'failed' | 'skipped';
  exitCode: number;
  counts?: RunCounts;
  error?: string;
  ms: number;
  /** It reached a worker (and was counted as running). */
  ran?: boolean;
}

export interface RunUsersOptions {
  command: PairCommand;
  jobs: number;
  request: UserRunRequest;
  settings: Settings;
  /** The command's options, passed to every user's run. */
  options: Record<string, unknown>;
  verbose: boolean;
  debug: boolean;
  onStart?(user: string): void;
  onResult(result: UserResult): void;
}

function workerPath(): string {
  // Run from the sources (tests under tsx) the worker is a .ts file beside this one.
  const here = fileURLToPath(import.meta.url);
  return here.replace(/user-runner\.(ts|js)$/, (_m, ext: string) => `user-worker.${ext}`);
}

class Worker {
  private child: ChildProcess | undefined;
  private pending: { id: number; resolve(r: WorkerReply): void } | undefined;
  private nextId = 1;

  private start(): ChildProcess {
    const child = fork(workerPath(), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    child.on('message', (reply: WorkerReply) => {
      if (this.pending?.id !== reply.id) return;
      const p = this.pending;
      this.pending = undefined;
      p.resolve(reply);
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const p = this.pending;
      this.pending = undefined;
      p?.resolve({ id: p.id, exitCode: 75, error: `the worker process running this user ended (${signal ?? `exit ${code}`}); run again` });
    });
    return child;
  }

  run(req: Omit<WorkerRequest, 'id'>): Promise<WorkerReply> {
    this.child ??= this.start();
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending = { id, resolve };
      this.child!.send({ ...req, id });
    });
  }

  stop(): void {
    this.child?.disconnect();
    this.child = undefined;
  }
}

function statusOf(exitCode: number): UserResult['status'] {
  return exitCode === 0 ? 'ok' : exitCode === 2 ? 'incomplete' : 'failed';
}

export async function runUsers(users: AsyncIterable<SelectedUser>, opts: RunUsersOptions): Promise<void> {
  const iterator = users[Symbol.asyncIterator]();
  let failure: unknown;
  const lane = async () => {
    const worker = new Worker();
    try {
      for (;;) {
        let next: IteratorResult<SelectedUser>;
        try {
          next = await iterator.next();
        } catch (err) {
          // The userdb itself failed (unreachable, unreadable): that ends the whole run.
          failure ??= err;
          return;
        }
        if (next.done || failure !== undefined) return;
        const started = Date.now();
        const selected = next.value;
        if ('error' in selected) {
          opts.onResult({ user: selected.user, status: 'failed', exitCode: selected.error.exitCode, error: selected.error.message, ms: 0 });
          continue;
        }
        const user = selected.record.user;
        let spec;
        try {
          spec = resolveUserRun(selected.record, opts.settings, { ...opts.request, listDestination: selected.destination });
        } catch (err) {
          if (err instanceof UserSkipped) opts.onResult({ user, status: 'skipped', exitCode: 0, error: err.message, ms: 0 });
          else opts.onResult({ user, status: 'failed', exitCode: exitCodeOf(err), error: err instanceof MailferryError ? err.message : String(err), ms: 0 });
          continue;
        }
        opts.onStart?.(user);
        const reply = await worker.run({ command: opts.command, spec, options: opts.options, settings: opts.settings, verbose: opts.verbose, debug: opts.debug });
        opts.onResult({ user, status: statusOf(reply.exitCode), exitCode: reply.exitCode, counts: reply.counts, error: reply.error, ms: Date.now() - started, ran: true });
      }
    } finally {
      worker.stop();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.jobs) }, lane));
  if (failure !== undefined) throw failure;
}
