/**
 * `mailferry server [--listen HOST:PORT]... [--tls-cert FILE --tls-key FILE] [--client-ca FILE]
 * [--secret-file FILE] [--allow-plaintext] [LOCATION-TEMPLATE]`: the far end of tcp: and tcps:
 * locations for many clients at once, as `doveadm server` is for dsync. Long-running: SIGHUP
 * rereads the certificate and the secret, SIGTERM (or Ctrl-C) stops listening and lets the
 * sessions finish, a second one stops them too. Logs one line per connection on stderr.
 */
import type { Command } from 'commander';
import type { ServerCliOptions } from '../../server/server-options.js';
import type { GlobalOptions } from '../run.js';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerServerCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('server')
    .description('serve the mail of this host\'s users to tcp: and tcps: locations of other hosts, authenticated by a shared secret or client certificates; runs until SIGTERM')
    .argument('[location-template]', "mail of users the userdb gives none, or of every user without a userdb (maildir:/srv/mail/%u/Maildir)")
    .option('--listen <host:port>', 'address to listen on; repeatable (default: every address, port server_port); :0 picks a free port', collect)
    .option('--tls-cert <file>', 'certificate chain, PEM (or server_tls_cert)')
    .option('--tls-key <file>', 'private key, PEM (or server_tls_key)')
    .option('--client-ca <file>', 'accept client certificates issued by these CAs, which then authenticate on their own (or server_client_ca)')
    .option('--secret-file <file>', 'the shared secret: the first line of FILE (or server_secret_file)')
    .option('--allow-plaintext', 'also serve tcp: (plaintext) clients; loopback addresses only')
    .option('--force-plaintext', 'allow plaintext on any address (the network in between must be trusted)')
    .action(async (template: string | undefined, opts: ServerCliOptions) => {
      const { settingsFrom } = await import('../settings.js');
      const settings = settingsFrom(globals());
      // The server's modules (its options, TLS, sessions, the connection table) load only for `mailferry server`.
      const [{ serverConfigFrom }, { stderrLog }, { MailServer }] = await Promise.all([
        import('../../server/server-options.js'), import('../../server/server-log.js'), import('../../server/mail-server.js'),
      ]);
      const config = serverConfigFrom(opts, template, settings);
      // This command handles its own signals: SIGHUP reloads, SIGTERM drains.
      for (const sig of ['SIGHUP', 'SIGINT', 'SIGTERM'] as const) process.removeAllListeners(sig);
      const log = stderrLog;
      process.on('uncaughtException', (err) => log(`internal error (the server goes on): ${err.stack ?? String(err)}`));
      // Handlers from the start: a SIGHUP as the server begins to listen (a reload right after a
      // start) would otherwise meet no handler and end the process. What comes before the server
      // runs is acted on once it does.
      const early: { stop?: string; reload?: boolean } = {};
      let onSignal = (sig: 'SIGHUP' | 'SIGINT' | 'SIGTERM') => {
        if (sig === 'SIGHUP') early.reload = true;
        else early.stop ??= sig;
      };
      for (const sig of ['SIGHUP', 'SIGINT', 'SIGTERM'] as const) process.on(sig, () => onSignal(sig));
      const server = await MailServer.start(config, log);
      await new Promise<void>((resolve) => {
        let stops = 0;
        const stop = (sig: string) => {
          stops++;
          if (stops === 1) {
            log(`${sig}: no new connections; waiting for ${server.sessionCount} session(s) to finish (${sig} again stops them)`);
            void server.drain().then(resolve);
          } else {
            log(`${sig} again: stopping ${server.sessionCount} session(s)`);
            server.stopSessions();
          }
        };
        onSignal = (sig) => (sig === 'SIGHUP' ? void server.reload() : stop(sig));
        if (early.stop !== undefined) stop(early.stop);
        else if (early.reload) void server.reload();
      });
      server.logStatus(true);
      await server.close();
      log('stopped');
      // Whatever a client left half-open is not a reason to stay.
      process.exit(0);
    });
}
