/**
 * `mailferry sync [-1] [SOURCE] DESTINATION`: dsync's `doveadm sync`.
 */
import type { Command } from 'commander';
import { formatMailboxName } from '../../model/mailbox-name.js';
import type { PairState } from '../../storage/store.js';
import { decodeState, encodeState } from '../../sync/state-string.js';
import { runSync, type SyncEvent } from '../../sync/sync.js';
import { DebugLog } from '../debug-log.js';
import { printJson } from '../output.js';
import { Progress } from '../progress.js';
import type { GlobalOptions } from '../run.js';
import { parseSettings } from '../settings.js';
import { PlannedCounts, summaryLine } from '../summary.js';
import { addPairOptions, includeFrom, messageFilterFrom, openPair, requireMatch, type PairCliOptions } from './pair.js';

interface SyncCliOptions extends PairCliOptions {
  oneway?: boolean;
  full?: boolean;
  state?: string;
}

export function registerSyncCommand(program: Command, globals: () => GlobalOptions): void {
  const cmd = program
    .command('sync')
    .description('two-way sync of SOURCE and DESTINATION: changes on both sides merge, nothing is lost (-1: merge SOURCE into DESTINATION only)')
    .argument('[source]', 'source mail location (default: -o mail_location=...)')
    .argument('[destination]', 'destination mail location, created when missing')
    .option('-1, --oneway', 'one-way merge: DESTINATION gains what SOURCE has, deletes nothing; SOURCE is not changed')
    .option('-f, --full', 'full sync: compare every mailbox, even those unchanged since the last sync')
    .option('-s, --state <state>', "stateful sync from this state string ('' to start); the new state is printed on stdout");
  addPairOptions(cmd).action(async (a: string | undefined, b: string | undefined, opts: SyncCliOptions) => {
      const g = globals();
      const debug = new DebugLog(Boolean(g.debug));
      // Checked before anything is opened (or created).
      const messageFilter = messageFilterFrom(opts);
      const pair = await openPair('sync', a, b, parseSettings(g.o, g.passwordFile), opts);
      try {
        if (!pair.dest) {
          process.stderr.write(`mailferry: destination ${b ?? a} does not exist yet: everything would be copied into it\n`);
          return;
        }
        debug.line(`opened ${pair.source.location} and ${pair.dest.location}`);
        const sep = pair.source.separator;
        const show = Boolean(opts.dryRun || g.verbose || g.debug);
        // With --json stdout carries the JSON alone (and the -s state line before it).
        const out = opts.dryRun && !opts.json ? process.stdout : process.stderr;
        const progress = g.verbose && !opts.dryRun && !opts.json ? new Progress(sep) : undefined;
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
          if (e.type === 'warning') process.stderr.write(`mailferry: warning: ${e.message}\n`);
          else if (!show) return;
          else if (e.type === 'tree') {
            const x = e.action;
            const where = e.side === 'a' ? 'source' : 'destination';
            const name = 'name' in x ? formatMailboxName(x.name, sep) : formatMailboxName(x.to, sep);
            out.write(`${where}: ${x.type === 'subscribe' ? (x.subscribed ? 'subscribe' : 'unsubscribe') : x.type} mailbox ${name}\n`);
          } else if (e.type === 'mailbox') {
            for (const [where, s] of [['source', e.plan.a], ['destination', e.plan.b]] as const) {
              if (s.saves.length || s.flagUpdates.length || s.expunges.length) {
                out.write(`${where}: mailbox ${formatMailboxName(e.name, sep)}: copy ${s.saves.length}, flags ${s.flagUpdates.length}, expunge ${s.expunges.length}\n`);
              }
            }
          }
        };
        let state: PairState | undefined;
        if (opts.state !== undefined) {
          try {
            state = decodeState(opts.state);
          } catch (err) {
            process.stderr.write(`mailferry: warning: ${(err as Error).message}; falling back to a full sync\n`);
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
        if (opts.state !== undefined) process.stdout.write(`${result.changedDuringSync ? '' : encodeState(result.state)}\n`);
        if (opts.json) printJson({ ...result, state: undefined });
        else if (show) process.stderr.write(`${summaryLine(result, Boolean(opts.dryRun))}\n`);
        debug.line(`result ${JSON.stringify({ ...result, state: undefined })}`);
        if (result.changedDuringSync) {
          process.stderr.write('mailferry: mailboxes changed during the sync; run it again\n');
          process.exitCode = 2;
        } else if (result.incomplete) {
          process.stderr.write('mailferry: the sync is incomplete: some mailboxes or files were left out (see the warnings above)\n');
          process.exitCode = 2;
        }
      } finally {
        await pair.close();
      }
    });
}
