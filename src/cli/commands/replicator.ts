/**
 * `mailferry replicator [-u MASK]...`: the replication daemon, in the foreground (logs to
 * stderr, one line per sync); SIGTERM or SIGINT stop it after the running syncs, SIGHUP reloads
 * the configuration and the userdb; --http serves its status page and metrics while it runs
 * (status-http.ts). Its subcommands speak to a running one over its control
 * socket, as `doveadm replicator` does: status [MASK], replicate [-f] [-p PRIORITY] MASK,
 * add MASK, remove MASK, dsync-status. With a shared queue (replicator_queue on PostgreSQL) they
 * ask the queue itself when --queue says so or no replicator answers on the socket, so a fleet
 * can be looked at from any host.
 */
import type { Command } from 'commander';
import type { ControlReply, ControlRequest } from '../../replicator/control-protocol.js';
import { controlRequest } from '../../replicator/control-client.js';
import { isSharedQueue, openReplicationQueue } from '../../replicator/open-replication-queue.js';
import type { QueueReply } from '../../replicator/pg-queue-control.js';
import { replicatorStateDir } from '../../replicator/replicator-paths.js';
import { parseRequestPriority } from '../../replicator/replication-priority.js';
import { defaultSocketPath } from '../../replicator/replicator-paths.js';
import { countLines, formatSpan, table, userLines, workerLines } from '../../replicator/status-format.js';
import { MailferryError } from '../../model/errors.js';
import { printJson, printLines } from '../output.js';
import type { GlobalOptions } from '../run.js';
import { settingsFrom } from '../settings.js';

interface DaemonCliOptions {
  user?: string[];
  socket?: string;
  http?: string;
  httpAllowRemote?: boolean;
}

interface ClientCliOptions {
  socket?: string;
  json?: boolean;
  queue?: boolean;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const SOCKET_HELP = 'the control socket (default: replicator.sock in replicator_state_dir)';
const QUEUE_HELP = 'ask the shared queue (replicator_queue on PostgreSQL) directly instead of a replicator\'s socket; done anyway when no replicator answers there';

async function runDaemon(opts: DaemonCliOptions, g: GlobalOptions): Promise<number> {
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

async function ask(cmd: Command, request: ControlRequest, g: GlobalOptions): Promise<Reply> {
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

function print(reply: Reply, json: boolean | undefined): void {
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

export function registerReplicatorCommand(program: Command, globals: () => GlobalOptions): void {
  const replicator = program
    .command('replicator')
    .description("keep every user of the userdb replicated to their mail_replica with two-way sync, watching their mail for changes (a foreground daemon; the subcommands control a running one)")
    .option('-u, --user <mask>', "replicate only this user, or the users matching a mask ('*@example.org'); repeatable (default: every user of the userdb)", collect)
    .option('--socket <path>', SOCKET_HELP)
    .option('--http <host:port>', 'serve a status page at / (queue, workers, users; searchable, refreshing itself), the same as JSON at /status.json and Prometheus metrics at /metrics; port 0 picks a free one (the log says which). No authentication: it names every user (default: the replication_http setting, else none)')
    .option('--http-allow-remote', 'let --http listen on an address other than loopback, for a network that is trusted or an authenticating proxy in front')
    .action(async (opts: DaemonCliOptions) => {
      process.exitCode = await runDaemon(opts, globals());
    });

  replicator
    .command('status')
    .description("the queue's counts; with MASK, each matching user's priority, last syncs, failures and next sync")
    .argument('[mask]', "a user name or mask ('*')")
    .option('--socket <path>', SOCKET_HELP)
    .option('--queue', QUEUE_HELP)
    .option('--json', 'print the reply as JSON')
    .action(async (mask: string | undefined, opts: ClientCliOptions, cmd: Command) => {
      print(await ask(cmd, mask === undefined ? { cmd: 'status' } : { cmd: 'status', mask }, globals()), opts.json);
    });

  replicator
    .command('replicate')
    .description('queue the users now (a name the replicator does not know yet is added); with a mask, the replicator\'s users that match')
    .argument('<mask>', 'a user name or mask')
    .option('-f, --full', 'a full sync: compare every mailbox')
    .option('-p, --priority <priority>', 'low, high or sync (default sync)', parseRequestPriority)
    .option('--socket <path>', SOCKET_HELP)
    .option('--queue', QUEUE_HELP)
    .option('--json', 'print the reply as JSON')
    .action(async (mask: string, opts: ClientCliOptions & { full?: boolean; priority?: ReturnType<typeof parseRequestPriority> }, cmd: Command) => {
      print(await ask(cmd, { cmd: 'replicate', mask, priority: opts.priority ?? 'sync', full: Boolean(opts.full) }, globals()), opts.json);
    });

  replicator
    .command('add')
    .description('replicate these users too (a mask is looked up in the userdb); they stay until removed')
    .argument('<mask>', 'a user name or mask')
    .option('--socket <path>', SOCKET_HELP)
    .option('--queue', QUEUE_HELP)
    .option('--json', 'print the reply as JSON')
    .action(async (mask: string, opts: ClientCliOptions, cmd: Command) => {
      print(await ask(cmd, { cmd: 'add', mask }, globals()), opts.json);
    });

  replicator
    .command('remove')
    .description('stop replicating these users; they stay out, across reloads and restarts, until added again')
    .argument('<mask>', 'a user name or mask')
    .option('--socket <path>', SOCKET_HELP)
    .option('--queue', QUEUE_HELP)
    .option('--json', 'print the reply as JSON')
    .action(async (mask: string, opts: ClientCliOptions, cmd: Command) => {
      print(await ask(cmd, { cmd: 'remove', mask }, globals()), opts.json);
    });

  replicator
    .command('dsync-status')
    .description('what each worker does now: the user it syncs, full or incremental, for how long')
    .option('--socket <path>', SOCKET_HELP)
    .option('--queue', QUEUE_HELP)
    .option('--json', 'print the reply as JSON')
    .action(async (opts: ClientCliOptions, cmd: Command) => {
      print(await ask(cmd, { cmd: 'dsync-status' }, globals()), opts.json);
    });
}
