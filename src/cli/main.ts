#!/usr/bin/env node
/**
 * mailferry's command line. Exit status: 0 ok, 64 usage, 65 bad data, 75 temporary
 * failure, 77 permission, 78 configuration (see README).
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { installSignalCleanup } from '../model/cleanup.js';
import { registerBackupCommand } from './commands/backup.js';
import { registerConfigCommand } from './commands/config.js';
import { registerDsyncServerCommand } from './commands/dsync-server.js';
import { registerFetchCommand } from './commands/fetch.js';
import { registerMailboxCommands } from './commands/mailbox.js';
import { registerReplicatorCommand } from './commands/replicator.js';
import { registerServerCommand } from './commands/server.js';
import { registerSyncCommand } from './commands/sync.js';
import { registerUserCommand } from './commands/user.js';
import { reportError, type GlobalOptions } from './run.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Commander's "error: ..." becomes our one-line form; its help hint goes on the same line. */
function oneLineError(text: string, write: (s: string) => void): void {
  const message = text.trim().replace(/^error:\s*/, '').replace(/\s*\n\s*/g, ' ');
  write(`mailferry: error: ${message} (run mailferry --help for usage)\n`);
}

export async function main(argv: string[]): Promise<number> {
  // Before anything is opened: a Ctrl-C must find every temporary file and lock registered.
  installSignalCleanup();
  const program = new Command('mailferry');
  program
    .description('Synchronize, back up and migrate mailboxes between Maildir, mbox and IMAP, keeping Dovecot metadata')
    .version(version)
    .option('-c, --config <file>', "configuration file (default /etc/mailferry/mailferry.toml when it exists; '' for none)")
    .option('-o <setting=value>', 'override a setting of the configuration file (mailferry config --help lists them)', collect, [])
    .option('--password-file <file>', 'read the password for an IMAP location from the first line of FILE (or set MAILFERRY_PASSWORD)')
    .option('-D, --debug', 'debug output')
    .option('-v, --verbose', 'verbose output')
    .configureOutput({ outputError: oneLineError })
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();
  program.hook('preAction', (_program, action) => {
    if (globals().debug) {
      process.stderr.write(`mailferry: debug: mailferry ${version}, node ${process.version}, ${process.platform}; ${action.name()} ${action.args.join(' ')}\n`);
    }
  });
  registerMailboxCommands(program, globals);
  registerFetchCommand(program, globals);
  registerBackupCommand(program, globals);
  registerSyncCommand(program, globals);
  registerUserCommand(program, globals);
  registerConfigCommand(program, globals);
  registerDsyncServerCommand(program, globals);
  registerServerCommand(program, globals);
  registerReplicatorCommand(program, globals);
  for (const cmd of program.commands) {
    cmd.exitOverride();
    for (const sub of cmd.commands) sub.exitOverride();
  }
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 64;
    }
    return reportError(err, Boolean(program.opts<GlobalOptions>().debug));
  }
}

process.exitCode = await main(process.argv);
