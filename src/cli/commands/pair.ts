/**
 * What `backup` and `sync` share: SOURCE and DESTINATION from the arguments (or SOURCE from
 * `-o mail_location`), -R, refusing locations that overlap on disk, the run lock, and opening
 * both stores.
 */
import { existsSync } from 'node:fs';
import { mailboxFilter } from '../../sync/mailbox-filter.js';
import { messageFilter, type MessageFilter } from '../../sync/message-filter.js';
import type { MailboxStatus } from '../../storage/store.js';
import { lockDirOf, locationOverlap, parseLocation, type MailLocation } from '../../config/location.js';
import { notFoundError, usageError } from '../../model/errors.js';
import { openStore } from '../../storage/open-store.js';
import type { MailStore } from '../../storage/store.js';
import { isRemoteLocation, parseRemoteLocation } from '../../remote/remote-location.js';
import { isTcpLocation, parseTcpLocation } from '../../remote/tcp-location.js';
import { PeerError } from '../../remote/wire-errors.js';
import { acquireRunLocks, type RunLockPlace } from '../run-lock.js';
import { storeOptions, type Settings } from '../settings.js';
import type { PairCliOptions } from './pair-options.js';

export type { PairCliOptions } from './pair-options.js';

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

/** -m or -g naming a mailbox neither side has is an error, not a silent run that did nothing. */
export function requireMatch(opts: PairCliOptions, result: { mailboxes: number; treeActions: number }, pair: OpenedPair): void {
  const what = opts.mailbox ? `mailbox '${opts.mailbox}'` : opts.guid ? `a mailbox with GUID ${opts.guid}` : undefined;
  if (what === undefined || result.mailboxes + result.treeActions > 0) return;
  throw notFoundError(`${what} exists neither in ${pair.source.location} nor in ${pair.dest?.location ?? 'the destination'}`);
}

/** Names both locations as the user wrote them, and the real paths that collide. */
function overlapMessage(fromLoc: MailLocation, toLoc: MailLocation): string | undefined {
  const overlap = locationOverlap(fromLoc, toLoc);
  if (!overlap) return undefined;
  const [x, y, relation] = overlap;
  const source = `source ${fromLoc.raw}`;
  const dest = `destination ${toLoc.raw}`;
  if (relation === 'same') return `${source} and ${dest} are the same mail location (${x}); name two different ones`;
  if (relation === 'inside') return `${source} lies inside ${dest} (${x} is under ${y}); the run would copy the mail into itself`;
  return `${dest} lies inside ${source} (${y} is under ${x}); the run would copy the mail into itself`;
}

function resolvePair(command: string, a: string | undefined, b: string | undefined, settings: Settings, opts: PairCliOptions) {
  let [from, to] = b === undefined ? [settings.mail_location, a] : [a, b];
  if (!from || !to) throw usageError(`${command} needs SOURCE and DESTINATION (or -o mail_location=SOURCE and DESTINATION)`);
  if (opts.reverse) [from, to] = [to, from];
  // A remote: location is checked, created and locked by the far side itself.
  const farOrLocal = (l: string) => (isTcpLocation(l) ? parseTcpLocation(l) : isRemoteLocation(l) ? parseRemoteLocation(l) : parseLocation(l));
  const fromLoc = farOrLocal(from);
  const toLoc = farOrLocal(to);
  const overlap = fromLoc.kind !== 'remote' && toLoc.kind !== 'remote' ? overlapMessage(fromLoc, toLoc) : undefined;
  if (overlap !== undefined) throw usageError(overlap);
  // A remote account always exists; creating it is not ours to do.
  const toExists = toLoc.kind === 'imap' || toLoc.kind === 'remote' || existsSync(toLoc.root);
  const lockPlace = (loc: MailLocation): RunLockPlace => ({
    dir: lockDirOf(loc),
    mayCreate: !opts.dryRun && (loc.kind === 'imap' || lockDirOf(loc) !== loc.root),
  });
  const locks = [fromLoc, toLoc].flatMap((loc) => (loc.kind === 'remote' ? [] : [lockPlace(loc)]));
  return { from, to, toExists, locks };
}

function seconds(option: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const secs = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(secs)) throw usageError(`invalid ${option} '${value}': expected whole seconds`);
  return secs;
}

/**
 * Opens both stores under the run lock. `-l` sets how long to wait for it (and for locks on
 * the mail itself: Dovecot's uidlist lock, an mbox dotlock held by a delivery agent).
 */
export async function openPair(command: string, a: string | undefined, b: string | undefined, settings: Settings, opts: PairCliOptions): Promise<OpenedPair> {
  const { from, to, toExists, locks } = resolvePair(command, a, b, settings, opts);
  // dsync's -T: seconds a remote store may stall; local stores have nothing that stalls.
  const base = { ...storeOptions(settings), ioTimeoutSeconds: seconds('-T', opts.timeout, 600), rawlogFile: opts.rawlog, user: opts.runUser };
  base.lockTimeoutSeconds = seconds('-l', opts.lock, settings.lock_timeout);
  const force = opts.force ? { force: true } : {};
  const release = await acquireRunLocks(locks, base.lockTimeoutSeconds);
  let source: MailStore;
  try {
    // Both sides of a two-way sync are written to; a backup writes only its destination.
    source = await openStore(from, command === 'sync' ? { ...base, ...force } : base);
  } catch (err) {
    release();
    throw err;
  }
  let dest: MailStore | undefined;
  try {
    // A dry run never creates the destination; one that does not exist yet plans as empty.
    dest = opts.dryRun && !toExists ? undefined : await openStore(to, { ...base, ...force, create: !opts.dryRun });
  } catch (err) {
    // A far destination is known to be missing only once the far side says so.
    if (!(opts.dryRun && err instanceof PeerError && err.kind === 'notfound')) {
      await source.close();
      release();
      throw err;
    }
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
