/**
 * What `backup` and `sync` share: SOURCE and DESTINATION from the arguments (or SOURCE from
 * `-o mail_location`), -R, the same-location check, and opening both stores.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Dotlock } from '../../storage/maildir/dotlock.js';
import { mailboxFilter } from '../../sync/mailbox-filter.js';
import { messageFilter, type MessageFilter } from '../../sync/message-filter.js';
import type { MailboxStatus } from '../../storage/store.js';
import { lockDirOf, locationIdentity, parseLocation } from '../../config/location.js';
import { usageError } from '../../model/errors.js';
import { openStore } from '../../storage/open-store.js';
import type { MailStore } from '../../storage/store.js';
import { storeOptions, type Settings } from '../settings.js';

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
    .option('-l, --lock <secs>', 'lock both locations so two runs cannot interleave; wait up to SECS for a running one, and for locks on the mail itself')
    .option('-T, --timeout <secs>', 'fail with exit 75 when a remote store (IMAP) stalls for SECS (default 600, 0 = never)')
    .option('--dry-run', 'print what would change, change nothing')
    .option('--json', 'print a JSON summary');
}

export function includeFrom(opts: PairCliOptions, separator: string): (m: MailboxStatus) => boolean {
  return mailboxFilter({ mailbox: opts.mailbox === '' ? undefined : opts.mailbox, guid: opts.guid, excludes: opts.exclude }, separator);
}

export function messageFilterFrom(opts: PairCliOptions): MessageFilter | undefined {
  return messageFilter({ since: opts.since, before: opts.before, flag: opts.flag, maxSize: opts.maxSize });
}

export interface OpenedPair {
  source: MailStore;
  /** Undefined only for a dry run against a destination that does not exist yet. */
  dest: MailStore | undefined;
  close(): Promise<void>;
}

function resolvePair(command: string, a: string | undefined, b: string | undefined, settings: Settings, opts: PairCliOptions) {
  let [from, to] = b === undefined ? [settings.mail_location, a] : [a, b];
  if (!from || !to) throw usageError(`${command} needs SOURCE and DESTINATION (or -o mail_location=SOURCE and DESTINATION)`);
  if (opts.reverse) [from, to] = [to, from];
  const fromLoc = parseLocation(from);
  const toLoc = parseLocation(to);
  const same = locationIdentity(fromLoc).find((id) => locationIdentity(toLoc).includes(id));
  if (same !== undefined) throw usageError(`source and destination are the same mail location (${same})`);
  // A remote account always exists; creating it is not ours to do.
  const toExists = toLoc.kind === 'imap' || existsSync(toLoc.root);
  return { from, to, toExists, locks: [lockDirOf(fromLoc), lockDirOf(toLoc)] };
}

function lockSeconds(value: string): number {
  const secs = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(secs)) throw usageError(`invalid -l '${value}': expected whole seconds`);
  return secs;
}

/** dsync's -T: seconds a remote store may stall; local stores have nothing that stalls. */
function ioTimeout(value: string | undefined): number {
  if (value === undefined) return 600;
  const secs = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(secs)) throw usageError(`invalid -T '${value}': expected whole seconds`);
  return secs;
}

/** Opens both stores, taking the run locks first when -l asks for them. */
export async function openPair(command: string, a: string | undefined, b: string | undefined, settings: Settings, opts: PairCliOptions): Promise<OpenedPair> {
  const { from, to, toExists, locks } = resolvePair(command, a, b, settings, opts);
  const base = { ...storeOptions(settings), ioTimeoutSeconds: ioTimeout(opts.timeout) };
  // dsync's -l is how long to wait for locks: ours, and the mail's own (Dovecot's uidlist
  // lock, an mbox dotlock held by a delivery agent).
  if (opts.lock !== undefined) base.lockTimeoutSeconds = lockSeconds(opts.lock);
  const held: Dotlock[] = [];
  if (opts.lock !== undefined) {
    const secs = lockSeconds(opts.lock);
    // Always in the same order, so two runs over the same pair cannot deadlock.
    for (const dir of [...new Set(locks)].sort()) {
      if (!existsSync(dir)) continue;
      try {
        held.push(await Dotlock.acquire(join(dir, 'mailferry-sync'), { timeoutSeconds: secs }));
      } catch (err) {
        for (const l of held) l.release();
        throw err;
      }
    }
  }
  const release = () => held.forEach((l) => l.release());
  let source: MailStore;
  try {
    source = await openStore(from, base);
  } catch (err) {
    release();
    throw err;
  }
  let dest: MailStore | undefined;
  try {
    // A dry run never creates the destination; one that does not exist yet plans as empty.
    dest = opts.dryRun && !toExists ? undefined : await openStore(to, { ...base, create: !opts.dryRun });
  } catch (err) {
    await source.close();
    release();
    throw err;
  }
  return {
    source,
    dest,
    async close() {
      await dest?.close();
      await source.close();
      release();
    },
  };
}
