/**
 * The options `backup` and `sync` share, defined where commands are registered: this module
 * imports nothing, so the command line's definitions load without the stores and the sync
 * engine that pair.ts opens them with.
 */
import type { Command } from 'commander';

export interface PairCliOptions {
  reverse?: boolean;
  dryRun?: boolean;
  mailbox?: string;
  guid?: string;
  exclude?: string[];
  lock?: string;
  timeout?: string;
  json?: boolean;
  since?: string;
  before?: string;
  flag?: string;
  maxSize?: string;
  force?: boolean;
  rawlog?: string;
  /** Set by a run over users: the user this pair runs for (%{user} of remote:, the account of tcp: and tcps:). */
  runUser?: string;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The dsync options `backup` and `sync` share. */
export function addPairOptions(cmd: Command): Command {
  return cmd
    .option('-R, --reverse', 'reverse the direction')
    .option('-m, --mailbox <name>', "only this mailbox ('' for the mailbox tree only, no messages)")
    .option('-g, --guid <guid>', 'only the mailbox with this GUID')
    .option('-x, --exclude <mask>', 'skip mailboxes matching this mask (* and % wildcards) or special-use (\\Trash); repeatable', collect)
    .option('-t, --since <date>', 'only copy messages received at or after DATE (UNIX seconds, 2024-01-31, or 30d ago)')
    .option('-e, --before <date>', 'only copy messages received before DATE')
    .option('-O, --flag <[-]flag>', 'only copy messages with this flag or keyword (-FLAG: without it)')
    .option('-I, --max-size <size>', 'only copy messages of at most SIZE (500k, 20M)')
    .option('-l, --lock <secs>', 'wait up to SECS for another run on the same pair (every run locks both locations) and for locks on the mail itself (default 30, or -o lock_timeout)')
    .option('-T, --timeout <secs>', 'fail with exit 75 when a remote store (IMAP, remote:) stalls for SECS (default 600, 0 = never)')
    .option('--force', 'open a destination that holds files that are not mail (never needed for an empty or new one)')
    .option('-r, --rawlog <file>', 'write the traffic with a remote: location to FILE, one line a frame')
    .option('--dry-run', 'print what would change, change nothing')
    .option('--json', 'print a JSON summary');
}
