/**
 * What `mailferry replicator` and its subcommands do once their options are read (see
 * commands/replicator.ts): the daemon, and the client of a running one or of the shared queue.
 */
import type { Command } from 'commander';
import type { ControlReply, ControlRequest } from '../../replicator/control-protocol.js';
import { controlRequest } from '../../replicator/control-client.js';
import { isSharedQueue, openReplicationQueue } from '../../replicator/open-replication-queue.js';
import type { QueueReply } from '../../replicator/pg-queue-control.js';
import { defaultSocketPath, replicatorStateDir } from '../../replicator/replicator-paths.js';
import { countLines, formatSpan, table, userLines, workerLines } from '../../replicator/status-format.js';
import { MailferryError } from '../../model/errors.js';
import { printJson, printLines } from '../output.js';
import type { GlobalOptions } from '../run.js';
import { settingsFrom } from '../settings.js';
import type { ClientCliOptions, DaemonCliOptions } from './replicator.js';

export async function runDaemon(opts: DaemonCliOptions, g: GlobalOptions): Promise<number> {
  const settings = settingsFrom(g);
  // A user name from an SQL userdb may hold a line break; one log line stays one line.
  // eslint-disable-next-line no-control-regex
  const log = (line: string) => process.stderr.write(`mailferry: replicator: ${line.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1))}\n`);
  // Replicas are made with the user's files the user's alone, as runs over users make them.
  process.umask(0o077);
  // The daemon opens no store itself (its workers do, and clean up after themselves): a signal
  // here means stop after the running syncs, or reload, not exit at once.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(signal);
  // Handlers from the start: a SIGHUP while the userdb is read would otherwise end the process.
  // A signal that comes before the daemon runs is acted on once it does.
  let early: { stop?: string; reload?: boolean } = {};
  let onStop: (signal: string) => void = (signal) => (early.stop ??= signal);
  let onReload: () => void = () => (early.reload = true);
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => onReload());
  // Listening first: an address that cannot be had stops the start before any sync runs.
  // The daemon's modules (the watcher, the queues, the metrics) load only for the daemon, not for every run of the CLI.
  const [{ ReplicatorDaemon }, { startStatusHttp }] = await Promise.all([import('../../replicator/replicator-daemon.js'), import('../../replicator/status-http.js')]);
  const http = await startStatusHttp(opts.http, settings.replication_http, Boolean(opts.httpAllowRemote), log);
  const running = await ReplicatorDaemon.start({
    settings,
    loadSettings: () => settingsFrom(g),
    selection: opts.user?.length ? { kind: 'names', masks: opts.user } : { kind: 'all' },
    socketPath: opts.socket ?? defaultSocketPath(settings),
    verbose: Boolean(g.verbose),
    debug: Boolean(g.debug),
    log,
  }).catch(async (err: unknown) => {
    await http?.close();
    throw err;
  });
  http?.attach(running);
  return new Promise<number>((resolve) => {
    onStop = (signal: string) => {
      log(`${signal}: stopping (again to end the running syncs now)`);
      running
        .stop()
        .then(
          () => 0,
          (err: unknown) => {
            log(`stopping failed: ${(err as Error)?.message ?? String(err)}`);
            return 75;
          },
        )
        .then(async (code) => {
          // The page shows the drain to its end, then goes.
          await http?.close();
          resolve(code);
        });
    };
    onReload = () => {
      log('SIGHUP: reloading the configuration and the userdb');
      running.reload().catch((err: unknown) => log(`reload failed: ${(err as Error)?.message ?? String(err)}`));
    };
    const pending = early;
    early = {};
    if (pending.stop !== undefined) onStop(pending.stop);
    else if (pending.reload) onReload();
  });
}

/** A reply, and whether the queue gave it (no replicator's watches or workers in it). */
type Reply = (Extract<ControlReply, { ok: true }> | QueueReply) & { fromQueue?: boolean };

export async function ask(cmd: Command, request: ControlRequest, g: GlobalOptions): Promise<Reply> {
  // --socket may stand before the subcommand (replicator --socket S status) or after it.
  const opts = { ...cmd.parent?.opts<ClientCliOptions>(), ...cmd.opts<ClientCliOptions>() };
  const settings = settingsFrom(g);
  if (opts.queue && !isSharedQueue(settings)) throw new MailferryError('usage', '--queue needs a shared queue: set replicator_queue to a postgresql:// URI or libpq key=value string');
  if (!opts.queue) {
    try {
      return await controlRequest(opts.socket ?? defaultSocketPath(settings), request);
    } catch (err) {
      // No replicator here: a shared queue can still answer for the fleet.
      if (!isSharedQueue(settings) || !(err instanceof MailferryError) || !/^no mailferry replicator answers at /.test(err.message)) throw err;
    }
  }
  const queue = await openReplicationQueue(settings, replicatorStateDir(settings));
  try {
    const { answerFromQueue } = await import('../../replicator/pg-queue-control.js');
    return { ...(await answerFromQueue(queue, request, settings)), fromQueue: true };
  } finally {
    await queue.close();
  }
}

export function print(reply: Reply, json: boolean | undefined): void {
  if (json) {
    printJson(reply);
    return;
  }
  switch (reply.cmd) {
    case 'status':
      // The queue alone knows nothing of watches: those two lines are a replicator's.
      printLines(countLines(reply.counts, reply.watched, reply.polled).slice(0, reply.fromQueue ? -2 : undefined));
      return;
    case 'claims':
      printLines(
        table(
          ['owner', 'username', 'type', 'priority', 'status'],
          reply.claims.map((c) => [c.owner, c.user, c.full ? 'full' : 'incremental', c.priority, `Syncing for ${formatSpan(reply.now - c.since)}${c.leaseLeftMs < 0 ? ' (lease ran out)' : ''}`]),
        ),
      );
      return;
    case 'status-users':
      printLines(userLines(reply.users, reply.now));
      return;
    case 'dsync-status':
      printLines(workerLines(reply.workers, reply.now));
      return;
    case 'replicate':
    case 'add':
    case 'remove': {
      const verb = { replicate: 'queued', add: 'added', remove: 'removed' }[reply.cmd];
      printLines([`${verb} ${reply.users.length} user${reply.users.length === 1 ? '' : 's'}: ${reply.users.join(' ')}`]);
    }
  }
}

