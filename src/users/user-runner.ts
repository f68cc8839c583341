/**
 * Runs a backup or sync for many users: up to `jobs` at once, each in a worker process (so a
 * user's run can take that user's uid, and SQLite work of one user does not stall the
 * others). Users are pulled from the selection as workers come free: nothing holds the whole
 * list, only the user each worker runs and the one it will run next (sent ahead, so a worker
 * never waits for this process between two users; once the selection is used up, a worker
 * that runs out takes back another's next user if it has not started). One user's failure,
 * even a crashed worker, never stops the others.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { exitCodeOf, MailferryError } from '../model/errors.js';
import type { Settings } from '../config/settings.js';
import type { RunCounts } from '../cli/summary.js';
import { resolveUserRun, UserSkipped, type UserRunRequest } from './user-run-spec.js';
import type { SelectedUser } from './user-selection.js';
import type { PairCommand, WorkerAnswer, WorkerReply, WorkerRequest } from './worker-messages.js';

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

/** Users a worker holds at most: the one it runs and the one sent ahead. */
const DEPTH = 2;

/** One user on its way through a worker; it keeps its place in the report when it moves to another. */
interface Job {
  user: string;
  req: Omit<WorkerRequest, 'type' | 'id'>;
  /** When the worker began it (it was first in its queue), for the user's time. */
  began?: number;
  announced?: boolean;
  done(reply: WorkerReply, ms: number): void;
}

class Worker {
  private child: ChildProcess | undefined;
  /** Sent and not answered, in the order sent: the worker runs them in that order, so the first is running. */
  private readonly jobs: { id: number; job: Job }[] = [];
  private readonly cancels = new Map<number, (cancelled: boolean) => void>();
  private waiters: (() => void)[] = [];
  private nextId = 1;

  constructor(private readonly onStart: (user: string) => void) {}

  get load(): number {
    return this.jobs.length;
  }

  private start(): ChildProcess {
    const child = fork(workerPath(), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    child.on('message', (answer: WorkerAnswer) => {
      if (answer.type === 'cancelled') {
        if (answer.cancelled) this.remove(answer.id);
        this.cancels.get(answer.id)?.(answer.cancelled);
        this.cancels.delete(answer.id);
        return;
      }
      if (this.jobs[0]?.id !== answer.id) return;
      const { job } = this.jobs.shift()!;
      job.done(answer, Date.now() - (job.began ?? Date.now()));
      this.begin();
      this.changed();
    });
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.settleCancels();
      const head = this.jobs.shift();
      head?.job.done({ type: 'done', id: head.id, exitCode: 75, error: `the worker process running this user ended (${signal ?? `exit ${code}`}); run again` }, Date.now() - (head.job.began ?? Date.now()));
      // The others never started: a new worker runs them.
      const rest = this.jobs.splice(0);
      for (const { job } of rest) this.send(job);
      this.begin();
      this.changed();
    });
    return child;
  }

  private send(job: Job): void {
    this.child ??= this.start();
    const id = this.nextId++;
    this.jobs.push({ id, job });
    this.child.send({ ...job.req, type: 'run', id });
  }

  /** The first job is the one running: its time starts now, and the report learns it started. */
  private begin(): void {
    const head = this.jobs[0]?.job;
    if (!head || head.began !== undefined) return;
    head.began = Date.now();
    if (!head.announced) this.onStart(head.user);
    head.announced = true;
  }

  /** A job the worker gave back. It may already be first here (its predecessor just ended) but never began there. */
  private remove(id: number): void {
    const at = this.jobs.findIndex((j) => j.id === id);
    if (at >= 0) this.jobs.splice(at, 1);
    this.begin();
    this.changed();
  }

  private changed(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when a job ends or leaves. */
  settled(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  run(job: Job): void {
    this.send(job);
    this.begin();
  }

  /** Takes back the job sent ahead, if the worker has not started it. */
  async takeBack(): Promise<Job | undefined> {
    const last = this.jobs.length >= DEPTH ? this.jobs[this.jobs.length - 1] : undefined;
    if (!last || !this.child || this.cancels.has(last.id)) return undefined;
    const cancelled = await new Promise<boolean>((resolve) => {
      this.cancels.set(last.id, resolve);
      this.child!.send({ type: 'cancel', id: last.id });
    });
    if (!cancelled) return undefined;
    // A job the runner already took for started (its predecessor had just ended) starts anew elsewhere.
    last.job.began = undefined;
    return last.job;
  }

  /** Cancels still unanswered when the worker goes: nothing was taken back. */
  private settleCancels(): void {
    for (const settle of this.cancels.values()) settle(false);
    this.cancels.clear();
  }

  /** Only once it holds no job; another worker may be waiting to take one back from it, and learns there is none. */
  stop(): void {
    this.settleCancels();
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
  let exhausted = false;
  const workers = Array.from({ length: Math.max(1, opts.jobs) }, () => new Worker((user) => opts.onStart?.(user)));

  /** The next user to send to a worker, or undefined once the selection is used up (or failed). */
  const nextJob = async (): Promise<Job | undefined> => {
    for (;;) {
      if (exhausted || failure !== undefined) return undefined;
      let next: IteratorResult<SelectedUser>;
      try {
        next = await iterator.next();
      } catch (err) {
        // The userdb itself failed (unreachable, unreadable): that ends the whole run.
        failure ??= err;
        return undefined;
      }
      if (next.done || failure !== undefined) {
        exhausted = true;
        return undefined;
      }
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
      return {
        user,
        req: { command: opts.command, spec, options: opts.options, settings: opts.settings, verbose: opts.verbose, debug: opts.debug },
        done: (reply, ms) => opts.onResult({ user, status: statusOf(reply.exitCode), exitCode: reply.exitCode, counts: reply.counts, error: reply.error, ms, ran: true }),
      };
    }
  };

  /** A job sent ahead to another worker that has not started, for a worker that has nothing left. */
  const takeBackFromOthers = async (me: Worker): Promise<Job | undefined> => {
    for (const other of workers) {
      if (other === me || other.load < DEPTH) continue;
      const job = await other.takeBack();
      if (job) return job;
    }
    return undefined;
  };

  const lane = async (worker: Worker) => {
    try {
      for (;;) {
        while (worker.load < DEPTH) {
          const job = await nextJob();
          if (!job) break;
          worker.run(job);
        }
        if (worker.load === 0) {
          const job = failure === undefined ? await takeBackFromOthers(worker) : undefined;
          if (!job) return;
          worker.run(job);
          continue;
        }
        await worker.settled();
      }
    } finally {
      worker.stop();
    }
  };
  await Promise.all(workers.map(lane));
  if (failure !== undefined) throw failure;
}
