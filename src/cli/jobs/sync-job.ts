/**
 * One `sync` (or `sync -1`) of one pair: the whole command for one account, or one user's part
 * of a run over many users.
 */
import { formatMailboxName } from '../../model/mailbox-name.js';
import type { PairState } from '../../storage/store.js';
import { decodeState, encodeState } from '../../sync/state-string.js';
import { runSync, type SyncEvent } from '../../sync/sync.js';
import { DebugLog } from '../debug-log.js';
import { printJson } from '../output.js';
import { Progress } from '../progress.js';
import { PlannedCounts, summaryLine } from '../summary.js';
import { includeFrom, messageFilterFrom, openPair, requireMatch, type PairCliOptions } from '../commands/pair.js';
import type { JobContext, JobOutcome } from './job-context.js';

export interface SyncCliOptions extends PairCliOptions {
  oneway?: boolean;
  full?: boolean;
  state?: string;
}

const NOTHING = { mailboxes: 0, skipped: 0, saved: 0, bytes: 0, flagUpdates: 0, expunged: 0, treeActions: 0 };

export async function syncJob(a: string | undefined, b: string | undefined, opts: SyncCliOptions, ctx: JobContext): Promise<JobOutcome> {
  const debug = new DebugLog(ctx.debug);
  // Checked before anything is opened (or created).
  const messageFilter = messageFilterFrom(opts);
  const pair = await openPair('sync', a, b, ctx.settings, opts);
  try {
    if (!pair.dest) {
      process.stderr.write(`${ctx.prefix}destination ${b ?? a} does not exist yet: everything would be copied into it\n`);
      return { exitCode: 0, counts: NOTHING };
    }
    debug.line(`opened ${pair.source.location} and ${pair.dest.location}`);
    const sep = pair.source.separator;
    const show = Boolean(opts.dryRun || (ctx.verbose && !ctx.oneOfMany) || ctx.debug);
    // With --json stdout carries the JSON alone (and the -s state line before it).
    const out = opts.dryRun && !opts.json ? process.stdout : process.stderr;
    const lead = ctx.oneOfMany ? ctx.prefix : '';
    const progress = ctx.verbose && !ctx.oneOfMany && !opts.dryRun && !opts.json ? new Progress(sep) : undefined;
    const planned = new PlannedCounts();
    const log = (e: SyncEvent) => {
      if (e.type === 'saved') return progress?.copied(e.size);
      if (e.type === 'mailbox') {
        progress?.mailbox(e.name, e.plan.a.saves.length + e.plan.b.saves.length);
        planned.add(e.plan);
        debug.step(`mailbox ${formatMailboxName(e.name, sep)}`);
      } else if (e.type === 'skipped-mailbox') {
        progress?.skippedMailbox();
        debug.endStep();
        debug.line(`mailbox ${formatMailboxName(e.name, sep)}: unchanged on both sides since the last sync, skipped`);
      }
      if (e.type === 'warning') process.stderr.write(`${ctx.prefix}warning: ${e.message}\n`);
      else if (!show) return;
      else if (e.type === 'tree') {
        const x = e.action;
        const where = e.side === 'a' ? 'source' : 'destination';
        const name = 'name' in x ? formatMailboxName(x.name, sep) : formatMailboxName(x.to, sep);
        out.write(`${lead}${where}: ${x.type === 'subscribe' ? (x.subscribed ? 'subscribe' : 'unsubscribe') : x.type} mailbox ${name}\n`);
      } else if (e.type === 'mailbox') {
        for (const [where, s] of [['source', e.plan.a], ['destination', e.plan.b]] as const) {
          if (s.saves.length || s.flagUpdates.length || s.expunges.length) {
            out.write(`${lead}${where}: mailbox ${formatMailboxName(e.name, sep)}: copy ${s.saves.length}, flags ${s.flagUpdates.length}, expunge ${s.expunges.length}\n`);
          }
        }
      }
    };
    let state: PairState | undefined;
    if (opts.state !== undefined) {
      try {
        state = decodeState(opts.state);
      } catch (err) {
        process.stderr.write(`${ctx.prefix}warning: ${(err as Error).message}; falling back to a full sync\n`);
        state = {};
      }
    }
    const ran = await runSync(pair.source, pair.dest, {
      state,
      mode: opts.oneway ? 'oneway' : 'twoway',
      full: opts.full,
      dryRun: opts.dryRun,
      include: includeFrom(opts, sep),
      messageFilter,
      treeOnly: opts.mailbox === '',
      onEvent: log,
    });
    debug.endStep();
    progress?.done();
    requireMatch(opts, ran, pair);
    const result = opts.dryRun ? planned.over(ran) : ran;
    if (!ctx.oneOfMany) {
      if (opts.state !== undefined) process.stdout.write(`${result.changedDuringSync ? '' : encodeState(result.state)}\n`);
      if (opts.json) printJson({ ...result, state: undefined });
      else if (show) process.stderr.write(`${summaryLine(result, Boolean(opts.dryRun))}\n`);
    }
    debug.line(`result ${JSON.stringify({ ...result, state: undefined })}`);
    let exitCode = 0;
    if (result.changedDuringSync) {
      process.stderr.write(`${ctx.prefix}mailboxes changed during the sync; run it again\n`);
      exitCode = 2;
    } else if (result.incomplete) {
      process.stderr.write(`${ctx.prefix}the sync is incomplete: some mailboxes or files were left out (see the warnings above)\n`);
      exitCode = 2;
    }
    return { exitCode, counts: result };
  } finally {
    await pair.close();
  }
}
