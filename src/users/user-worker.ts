/**
 * A worker process of the users runner: runs one user's backup or sync at a time, in the order
 * the requests came, under that user's uid and gid when started as root, and answers with the
 * outcome. It exits when the runner goes away, as a killed run would: every store is safe to
 * interrupt.
 */
import { exitCodeOf, MailferryError } from '../model/errors.js';
import { installSignalCleanup, runCleanups } from '../model/cleanup.js';
import { backupJob } from '../cli/jobs/backup-job.js';
import { becomeUser, runningAsRoot } from './identity.js';
import type { WorkerAnswer, WorkerMessage, WorkerReply, WorkerRequest } from './worker-messages.js';

installSignalCleanup();

function send(reply: WorkerAnswer): Promise<void> {
  return new Promise((resolve) => process.send!(reply, undefined, {}, () => resolve()));
}

/** HOME and the state directory follow the user, as they would for a login of theirs. */
function userEnvironment(home: string | undefined): () => void {
  if (!runningAsRoot() || home === undefined) return () => {};
  const saved = { HOME: process.env.HOME, XDG_STATE_HOME: process.env.XDG_STATE_HOME };
  process.env.HOME = home;
  process.env.XDG_STATE_HOME = `${home}/.local/state`;
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

/**
 * The uid and gid the worker holds between users. Each change of them costs a signal to every
 * thread of the process (glibc applies setgroups, setegid and seteuid to all threads), about
 * 1.7 ms a user for going there and back; virtual users mostly share one mail uid, so the
 * worker keeps the identity while the next user has the same one, and goes back to root only
 * to take another.
 */
let held: { uid: number; gid: number; restore(): void } | undefined;

function takeIdentity(spec: WorkerRequest['spec']): void {
  const who = spec.uid === undefined ? undefined : { uid: spec.uid, gid: spec.gid ?? spec.uid };
  if (held !== undefined && who !== undefined && held.uid === who.uid && held.gid === who.gid) return;
  if (held !== undefined) {
    const { restore } = held;
    held = undefined;
    try {
      restore();
    } catch (err) {
      // A worker that cannot get back to root must not run anyone else: the runner starts a new one.
      process.stderr.write(`mailferry: users worker cannot return to root: ${(err as Error).message}\n`);
      runCleanups();
      process.exit(75);
    }
  }
  const restore = becomeUser(spec.user, who);
  if (runningAsRoot() && who !== undefined) held = { ...who, restore };
}

async function run(req: WorkerRequest): Promise<WorkerReply> {
  const { spec } = req;
  const prefix = `mailferry: user ${spec.user}: `;
  let restoreEnv: (() => void) | undefined;
  try {
    takeIdentity(spec);
    restoreEnv = userEnvironment(spec.home);
    const ctx = { settings: req.settings, verbose: req.verbose, debug: req.debug, prefix, oneOfMany: true };
    // A backup-only run never loads the two-way engine.
    const job = req.command === 'backup' ? backupJob : (await import('../cli/jobs/sync-job.js')).syncJob;
    const outcome = await job(spec.source, spec.destination, { ...req.options, json: false, runUser: spec.user }, ctx);
    return { type: 'done', id: req.id, exitCode: outcome.exitCode, counts: outcome.counts };
  } catch (err) {
    const message = err instanceof MailferryError ? err.message : `internal error: ${(err as Error)?.stack ?? String(err)}`;
    const code = (err as { code?: unknown })?.code;
    const exitCode = typeof code === 'string' && code.startsWith('SQLITE_BUSY') ? 75 : exitCodeOf(err);
    return { type: 'done', id: req.id, exitCode, error: message };
  } finally {
    restoreEnv?.();
  }
}

// The runner sends the next user before this one ends, so that no time is lost between users;
// they still run one at a time, in the order sent. One that has not started may be taken back.
const waiting: WorkerRequest[] = [];
let running = false;

async function pump(): Promise<void> {
  if (running) return;
  running = true;
  for (let req = waiting.shift(); req !== undefined; req = waiting.shift()) {
    const r = req;
    const reply = await run(r).catch((err: unknown): WorkerReply => ({ type: 'done', id: r.id, exitCode: exitCodeOf(err), error: `internal error: ${String(err)}` }));
    await send(reply);
  }
  running = false;
}

process.on('message', (msg: WorkerMessage) => {
  if (msg.type === 'cancel') {
    const at = waiting.findIndex((r) => r.id === msg.id);
    if (at >= 0) waiting.splice(at, 1);
    void send({ type: 'cancelled', id: msg.id, cancelled: at >= 0 });
    return;
  }
  waiting.push(msg);
  void pump();
});

process.on('disconnect', () => {
  runCleanups();
  process.exit(75);
});
