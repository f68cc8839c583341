/**
 * The replicator's worker processes: the users runner's own worker (src/users/user-worker.ts,
 * which runs one user's `sync` under that user's uid when root), kept alive between syncs and
 * given one user at a time. Each worker is its own process group, so a Ctrl-C or a SIGTERM sent
 * to the daemon's group does not cut the syncs the daemon means to let finish; a worker whose
 * daemon is gone (even by SIGKILL) sees its channel close and exits.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Settings } from '../config/settings.js';
import type { UserRunSpec } from '../users/user-run-spec.js';
import type { WorkerAnswer, WorkerReply, WorkerRequest } from '../users/worker-messages.js';
import type { ReplicationPriority } from './replication-priority.js';

function workerPath(): string {
  // From the sources (tests under tsx) the worker is a .ts file; built, a .js one.
  const here = fileURLToPath(import.meta.url);
  return here.replace(/replicator[/\\]sync-worker-pool\.(ts|js)$/, (_m, ext: string) => `users/user-worker.${ext}`);
}

export interface SyncRequest {
  spec: UserRunSpec;
  full: boolean;
  priority: ReplicationPriority;
}

/** What one worker does now, for `replicator dsync-status`. */
export interface WorkerState {
  worker: number;
  pid?: number;
  user?: string;
  full?: boolean;
  priority?: ReplicationPriority;
  /** When the running sync started (ms since the epoch). */
  since?: number;
}

interface Running {
  id: number;
  request: SyncRequest;
  since: number;
  done(reply: WorkerReply): void;
}

class Slot {
  child: ChildProcess | undefined;
  running: Running | undefined;
  private nextId = 1;

  constructor(readonly index: number) {}

  private start(): ChildProcess {
    const child = fork(workerPath(), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced', detached: true });
    child.on('message', (answer: WorkerAnswer) => {
      if (answer.type !== 'done' || this.running?.id !== answer.id) return;
      const r = this.running;
      this.running = undefined;
      r.done(answer);
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const r = this.running;
      if (r === undefined) return;
      this.running = undefined;
      r.done({ type: 'done', id: r.id, exitCode: 75, error: `the worker process syncing this user ended (${signal ?? `exit ${code}`})` });
    });
    // A worker that could not be started (no processes left): its sync fails and is tried again later.
    child.on('error', (err) => {
      if (this.child === child) this.child = undefined;
      const r = this.running;
      if (r === undefined) return;
      this.running = undefined;
      r.done({ type: 'done', id: r.id, exitCode: 75, error: `no worker process for this user: ${err.message}` });
    });
    return child;
  }

  run(request: SyncRequest, base: Omit<WorkerRequest, 'type' | 'id' | 'spec' | 'options' | 'command'>): Promise<WorkerReply> {
    this.child ??= this.start();
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.running = { id, request, since: Date.now(), done: resolve };
      // Dovecot's replicator runs `sync -d -N -l 30 -U [-f]`: two-way, stateful (the pair state the
      // stores keep), full when due or asked for.
      const message: WorkerRequest = { ...base, type: 'run', id, command: 'sync', spec: request.spec, options: { full: request.full } };
      this.child!.send(message);
    });
  }

  /** Ends the worker process: gently (it runs its cleanups) or not. */
  kill(signal: NodeJS.Signals): void {
    const child = this.child;
    if (child?.pid === undefined) return;
    try {
      process.kill(child.pid, signal);
    } catch {
      // already gone
    }
  }

  /** An idle worker is let go by closing its channel; it exits by itself. */
  release(): void {
    if (this.running !== undefined || this.child === undefined) return;
    this.child.disconnect();
    this.child = undefined;
  }
}

export class SyncWorkerPool {
  private slots: Slot[] = [];
  private settled: (() => void)[] = [];

  constructor(
    size: number,
    private settings: Settings,
    private readonly flags: { verbose: boolean; debug: boolean },
  ) {
    this.resize(size);
  }

  get size(): number {
    return this.slots.length;
  }

  get idle(): number {
    return this.slots.filter((s) => s.running === undefined).length;
  }

  get busy(): number {
    return this.slots.length - this.idle;
  }

  /** Syncs beyond the new size finish where they run; their workers go when they do. */
  resize(size: number): void {
    const n = Math.max(1, size);
    while (this.slots.length < n) this.slots.push(new Slot(this.slots.length + 1));
    for (const s of this.slots.splice(n)) this.retiring.add(s);
    this.retireIdle();
  }

  private readonly retiring = new Set<Slot>();

  private retireIdle(): void {
    for (const s of this.retiring) {
      if (s.running !== undefined) continue;
      s.release();
      this.retiring.delete(s);
    }
  }

  setSettings(settings: Settings): void {
    this.settings = settings;
  }

  /** Runs one user's sync on an idle worker; throws when none is idle (the daemon asks `idle` first). */
  async run(request: SyncRequest): Promise<WorkerReply> {
    const slot = this.slots.find((s) => s.running === undefined);
    if (slot === undefined) throw new Error('no idle replicator worker');
    try {
      return await slot.run(request, { settings: this.settings, verbose: this.flags.verbose, debug: this.flags.debug });
    } finally {
      this.retireIdle();
      const waiters = this.settled.splice(0);
      for (const w of waiters) w();
    }
  }

  status(): WorkerState[] {
    return [...this.slots, ...this.retiring].map((s) => ({
      worker: s.index,
      pid: s.child?.pid,
      user: s.running?.request.spec.user,
      full: s.running?.request.full,
      priority: s.running?.request.priority,
      since: s.running?.since,
    }));
  }

  private allSlots(): Slot[] {
    return [...this.slots, ...this.retiring];
  }

  /** Waits until no sync runs, or `timeoutMs` passed; true when they all finished. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.allSlots().some((s) => s.running !== undefined)) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.settled.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  /** Stops every worker: idle ones are let go, running ones are sent `signal` (SIGTERM: they clean up and exit 143). */
  close(signal: NodeJS.Signals = 'SIGTERM'): void {
    for (const s of this.allSlots()) {
      if (s.running !== undefined) s.kill(signal);
      else s.release();
    }
  }
}
