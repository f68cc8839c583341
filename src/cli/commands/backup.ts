/**
 * `mailferry backup [SOURCE] DESTINATION`: dsync's `doveadm backup`.
 */
import type { Command } from 'commander';
import { formatMailboxName } from '../../model/mailbox-name.js';
import { runBackup, type BackupEvent } from '../../sync/backup.js';
import { DebugLog } from '../debug-log.js';
import { printJson } from '../output.js';
import { Progress } from '../progress.js';
import { parseSettings } from '../settings.js';
import { summaryLine } from '../summary.js';
import { addPairOptions, includeFrom, messageFilterFrom, openPair, requireMatch, type PairCliOptions } from './pair.js';
import type { GlobalOptions } from '../run.js';

interface BackupCliOptions extends PairCliOptions {
  full?: boolean;
}

/** Sets process.exitCode to 2 when a side changed during the run or a message was refused. */
export function registerBackupCommand(program: Command, globals: () => GlobalOptions): void {
  const cmd = program
    .command('backup')
    .description('make DESTINATION equal to SOURCE (mailboxes, UIDs, UIDVALIDITY, flags, keywords, subscriptions), removing what SOURCE lacks')
    .argument('[source]', 'source mail location (default: -o mail_location=...)')
    .argument('[destination]', 'destination mail location, created when missing')
    .option('-f, --full', 'full sync: compare every mailbox, even those neither side changed since the last backup');
  addPairOptions(cmd).action(async (a: string | undefined, b: string | undefined, opts: BackupCliOptions) => {
      const g = globals();
      const debug = new DebugLog(Boolean(g.debug));
      // Checked before anything is opened (or created).
      const messageFilter = messageFilterFrom(opts);
      const pair = await openPair('backup', a, b, parseSettings(g.o, g.passwordFile), opts);
      debug.line(`opened ${pair.source.location} and ${pair.dest?.location ?? `${b ?? a} (not created yet)`}`);
      try {
        const separator = pair.dest?.separator ?? pair.source.separator;
        const progress = g.verbose && !opts.dryRun && !opts.json ? new Progress(separator) : undefined;
        const show = Boolean(opts.dryRun || g.verbose || g.debug);
        // With --json stdout carries the JSON alone.
        const out = opts.dryRun && !opts.json ? process.stdout : process.stderr;
        const log = (e: BackupEvent) => {
          if (e.type === 'saved') return progress?.copied(e.size);
          if (e.type === 'mailbox') {
            progress?.mailbox(e.name, e.plan.saves.length);
            debug.step(`mailbox ${formatMailboxName(e.name, separator)}`);
          } else if (e.type === 'skipped-mailbox') {
            progress?.skippedMailbox();
            debug.endStep();
            debug.line(`mailbox ${formatMailboxName(e.name, separator)}: unchanged on both sides since the last backup, skipped`);
          }
          describe(e, separator, out, show);
        };
        const result = await runBackup(pair.source, pair.dest, {
          dryRun: opts.dryRun,
          include: includeFrom(opts, pair.source.separator),
          messageFilter,
          full: opts.full,
          treeOnly: opts.mailbox === '',
          onEvent: log,
        });
        debug.endStep();
        progress?.done();
        requireMatch(opts, result, pair);
        if (opts.json) printJson(result);
        else if (show) process.stderr.write(`${summaryLine(result, Boolean(opts.dryRun))}\n`);
        debug.line(`result ${JSON.stringify(result)}`);
        if (result.changedDuringSync) {
          process.stderr.write('mailferry: the source or destination changed during the backup (or a message was refused); run it again\n');
          process.exitCode = 2;
        } else if (result.incomplete) {
          process.stderr.write('mailferry: the backup is incomplete: some mailboxes or files were left out (see the warnings above)\n');
          process.exitCode = 2;
        }
      } finally {
        await pair.close();
      }
    });
}

function describe(e: BackupEvent, sep: string, out: NodeJS.WritableStream, show: boolean): void {
  if (e.type === 'tree') {
    const a = e.action;
    const name = 'name' in a ? formatMailboxName(a.name, sep) : `${formatMailboxName(a.from, sep)} -> ${formatMailboxName(a.to, sep)}`;
    const what = a.type === 'subscribe' ? (a.subscribed ? 'subscribe' : 'unsubscribe') : a.type;
    if (show) out.write(`${what} mailbox ${name}\n`);
  } else if (e.type === 'mailbox') {
    const p = e.plan;
    if (!show) return;
    if (p.rebuild) out.write(`rebuild mailbox ${formatMailboxName(e.name, sep)}: ${p.rebuildReason ?? ''}\n`);
    if (p.saves.length || p.flagUpdates.length || p.expunges.length) {
      out.write(`mailbox ${formatMailboxName(e.name, sep)}: copy ${p.saves.length}, flags ${p.flagUpdates.length}, expunge ${p.expunges.length}\n`);
    }
  } else if (e.type === 'skipped') {
    process.stderr.write(`mailferry: warning: ${formatMailboxName(e.name, sep)} UID ${e.uid}: ${e.reason}\n`);
  } else if (e.type === 'warning') {
    process.stderr.write(`mailferry: warning: ${e.message}\n`);
  }
}
