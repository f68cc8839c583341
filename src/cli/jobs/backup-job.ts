/**
 * One `backup` of one pair: the whole command for one account, or one user's part of a run
 * over many users.
 */
import { formatMailboxName } from '../../model/mailbox-name.js';
import { runBackup, type BackupEvent } from '../../sync/backup.js';
import { DebugLog } from '../debug-log.js';
import { printJson } from '../output.js';
import { Progress } from '../progress.js';
import { summaryLine } from '../summary.js';
import { includeFrom, messageFilterFrom, openPair, requireMatch, type PairCliOptions } from '../commands/pair.js';
import type { JobContext, JobOutcome } from './job-context.js';

export interface BackupCliOptions extends PairCliOptions {
  full?: boolean;
}

export async function backupJob(a: string | undefined, b: string | undefined, opts: BackupCliOptions, ctx: JobContext): Promise<JobOutcome> {
  const debug = new DebugLog(ctx.debug);
  // Checked before anything is opened (or created).
  const messageFilter = messageFilterFrom(opts);
  const pair = await openPair('backup', a, b, ctx.settings, opts);
  debug.line(`opened ${pair.source.location} and ${pair.dest?.location ?? `${b ?? a} (not created yet)`}`);
  try {
    const separator = pair.dest?.separator ?? pair.source.separator;
    const progress = ctx.verbose && !ctx.oneOfMany && !opts.dryRun && !opts.json ? new Progress(separator) : undefined;
    const show = Boolean(opts.dryRun || (ctx.verbose && !ctx.oneOfMany) || ctx.debug);
    // With --json stdout carries the JSON alone.
    const out = opts.dryRun && !opts.json ? process.stdout : process.stderr;
    const lead = ctx.oneOfMany ? ctx.prefix : '';
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
      describe(e, separator, out, show, lead, ctx.prefix);
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
    if (!ctx.oneOfMany) {
      if (opts.json) printJson(result);
      else if (show) process.stderr.write(`${summaryLine(result, Boolean(opts.dryRun))}\n`);
    }
    debug.line(`result ${JSON.stringify(result)}`);
    let exitCode = 0;
    if (result.changedDuringSync) {
      process.stderr.write(`${ctx.prefix}the source or destination changed during the backup (or a message was refused); run it again\n`);
      exitCode = 2;
    } else if (result.incomplete) {
      process.stderr.write(`${ctx.prefix}the backup is incomplete: some mailboxes or files were left out (see the warnings above)\n`);
      exitCode = 2;
    }
    return { exitCode, counts: result };
  } finally {
    await pair.close();
  }
}

function describe(e: BackupEvent, sep: string, out: NodeJS.WritableStream, show: boolean, lead: string, prefix: string): void {
  if (e.type === 'tree') {
    const a = e.action;
    const name = 'name' in a ? formatMailboxName(a.name, sep) : `${formatMailboxName(a.from, sep)} -> ${formatMailboxName(a.to, sep)}`;
    const what = a.type === 'subscribe' ? (a.subscribed ? 'subscribe' : 'unsubscribe') : a.type;
    if (show) out.write(`${lead}${what} mailbox ${name}\n`);
  } else if (e.type === 'mailbox') {
    const p = e.plan;
    if (!show) return;
    if (p.rebuild) out.write(`${lead}rebuild mailbox ${formatMailboxName(e.name, sep)}: ${p.rebuildReason ?? ''}\n`);
    if (p.saves.length || p.flagUpdates.length || p.expunges.length) {
      out.write(`${lead}mailbox ${formatMailboxName(e.name, sep)}: copy ${p.saves.length}, flags ${p.flagUpdates.length}, expunge ${p.expunges.length}\n`);
    }
  } else if (e.type === 'skipped') {
    process.stderr.write(`${prefix}warning: ${formatMailboxName(e.name, sep)} UID ${e.uid}: ${e.reason}\n`);
  } else if (e.type === 'warning') {
    process.stderr.write(`${prefix}warning: ${e.message}\n`);
  }
}
