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
import { parseRequestPriority } from '../../replicator/replication-priority.js';
import type { GlobalOptions } from '../run.js';

/** What the commands do (the control socket's client, the queues, the daemon) loads when one runs. */
const run = () => import('./replicator-run.js');

export interface DaemonCliOptions {
  user?: string[];
  socket?: string;
  http?: string;
  httpAllowRemote?: boolean;
}

export interface ClientCliOptions {
  socket?: string;
  json?: boolean;
  queue?: boolean;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const SOCKET_HELP = 'the control socket (default: replicator.sock in replicator_state_dir)';
const QUEUE_HELP = 'ask the shared queue (replicator_queue on PostgreSQL) directly instead of a replicator\'s socket; done anyway when no replicator answers there';

export function registerReplicatorCommand(program: Command, globals: () => GlobalOptions): void {
  const replicator = program
    .command('replicator')
    .description("keep every user of the userdb replicated to their mail_replica with two-way sync, watching their mail for changes (a foreground daemon; the subcommands control a running one)")
    .option('-u, --user <mask>', "replicate only this user, or the users matching a mask ('*@example.org'); repeatable (default: every user of the userdb)", collect)
    .option('--socket <path>', SOCKET_HELP)
    .option('--http <host:port>', 'serve a status page at / (queue, workers, users; searchable, refreshing itself), the same as JSON at /status.json and Prometheus metrics at /metrics; port 0 picks a free one (the log says which). No authentication: it names every user (default: the replication_http setting, else none)')
    .option('--http-allow-remote', 'let --http listen on an address other than loopback, for a network that is trusted or an authenticating proxy in front')
    .action(async (opts: DaemonCliOptions) => {
      process.exitCode = await (await run()).runDaemon(opts, globals());
    });

  replicator
    .command('status')
    .description("the queue's counts; with MASK, each matching user's priority, last syncs, failures and next sync")
    .argument('[mask]', "a user name or mask ('*')")
    .option('--socket <path>', SOCKET_HELP)
    .option('--queue', QUEUE_HELP)
    .option('--json', 'print the reply as JSON')
    .action(async (mask: string | undefined, opts: ClientCliOptions, cmd: Command) => {
      const { ask, print } = await run();
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
      const { ask, print } = await run();
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
      const { ask, print } = await run();
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
      const { ask, print } = await run();
      print(await ask(cmd, { cmd: 'remove', mask }, globals()), opts.json);
    });

  replicator
    .command('dsync-status')
    .description('what each worker does now: the user it syncs, full or incremental, for how long')
    .option('--socket <path>', SOCKET_HELP)
    .option('--queue', QUEUE_HELP)
    .option('--json', 'print the reply as JSON')
    .action(async (opts: ClientCliOptions, cmd: Command) => {
      const { ask, print } = await run();
      print(await ask(cmd, { cmd: 'dsync-status' }, globals()), opts.json);
    });
}
