/**
 * A worker process of the users runner: runs one user's backup or sync at a time, under that
 * user's uid and gid when started as root, and answers with the outcome. It exits when the
 * runner goes away, as a killed run would: every store is safe to interrupt.
 */
import { exitCodeOf, MailferryError } from '../model/errors.js';
import { installSignalCleanup, runCleanups } from '../model/cleanup.js';
import { backupJob } from '../cli/jobs/backup-job.js';
import { syncJob } from '../cli/jobs/sync-job.js';
import { becomeUser, runningAsRoot } from './identity.js';
import type { WorkerReply, WorkerRequest } from './worker-messages.js';

installSignalCleanup();

function send(reply: WorkerReply): Promise<void> {
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

async function run(req: WorkerRequest): Promise<WorkerReply> {
  const { spec } = req;
  const prefix = `mailferry: user ${spec.user}: `;
  let restore: (() => void) | undefined;
  let restoreEnv: (() => void) | undefined;
  try {
    restore = becomeUser(spec.user, spec.uid === undefined ? undefined : { uid: spec.uid, gid: spec.gid ?? spec.uid });
    restoreEnv = userEnvironment(spec.home);
    const ctx = { settings: req.settings, verbose: req.verbose, debug: req.debug, prefix, oneOfMany: true };
    const job = req.command === 'backup' ? backupJob : syncJob;
    const outcome = await job(spec.source, spec.destination, { ...req.options, json: false }, ctx);
    return { id: req.id, exitCode: outcome.exitCode, counts: outcome.counts };
  } catch (err) {
    const message = err instanceof MailferryError ? err.message : `internal error: ${(err as Error)?.stack ?? String(err)}`;
    const code = (err as { code?: unknown })?.code;
    const exitCode = typeof code === 'string' && code.startsWith('SQLITE_BUSY') ? 75 : exitCodeOf(err);
    return { id: req.id, exitCode, error: message };
  } finally {
    restoreEnv?.();
    restore?.();
  }
}

process.on('message', (req: WorkerRequest) => {
  void run(req).then(send);
});

process.on('disconnect', () => {
  runCleanups();
  process.exit(75);
});
