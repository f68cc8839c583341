/**
 * `mailferry dsync-server [-u USER] [LOCATION]`: serves one store on stdin/stdout, the far end
 * of a `remote:` location (run by ssh, or by any dsync_remote_cmd). Logs go to stderr, which
 * the other side shows after this host's name; the process ends when its input closes.
 * Without LOCATION it serves mail_location, or with -u the user's mail from the userdb, with
 * that user's uid and gid when started as root (taken for good: a server reading what a peer
 * sends keeps no way back to root).
 */
import type { Command } from 'commander';
import type { GlobalOptions } from '../run.js';

export function registerDsyncServerCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('dsync-server')
    .description("serve one mail store on stdin/stdout for a backup or sync from another host (the far end of remote: locations); logs on stderr, ends when its input closes")
    .argument('[location]', "mail location to serve (default: -o mail_location, or the user's mail with -u)")
    .option('-u, --user <user>', "serve this user's mail (the userdb's mail field or mail_location for the user); as root, with the user's uid and gid")
    .option('-r, --rawlog <file>', 'write every frame to FILE, one line each')
    .action(async (locationArg: string | undefined, opts: { user?: string; rawlog?: string }) => {
      // The remote protocol's modules load only for this command.
      const { runDsyncServer } = await import('./dsync-server-run.js');
      const { settingsFrom } = await import('../settings.js');
      await runDsyncServer(locationArg, opts, settingsFrom(globals()));
    });
}
