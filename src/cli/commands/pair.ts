/**
 * What `backup` and `sync` share: SOURCE and DESTINATION from the arguments (or SOURCE from
 * `-o mail_location`), -R, the same-location check, and opening both stores.
 */
import { existsSync } from 'node:fs';
import { parseLocation } from '../../config/location.js';
import { usageError } from '../../model/errors.js';
import { openStore } from '../../storage/open-store.js';
import type { MailStore } from '../../storage/store.js';
import { storeOptions, type Settings } from '../settings.js';

export interface OpenedPair {
  source: MailStore;
  /** Undefined only for a dry run against a destination that does not exist yet. */
  dest: MailStore | undefined;
  close(): Promise<void>;
}

export function openPair(command: string, a: string | undefined, b: string | undefined, settings: Settings, opts: { reverse?: boolean; dryRun?: boolean }): OpenedPair {
  let [from, to] = b === undefined ? [settings.mail_location, a] : [a, b];
  if (!from || !to) throw usageError(`${command} needs SOURCE and DESTINATION (or -o mail_location=SOURCE and DESTINATION)`);
  if (opts.reverse) [from, to] = [to, from];
  const fromLoc = parseLocation(from);
  const toLoc = parseLocation(to);
  if (fromLoc.root === toLoc.root || fromLoc.inbox === toLoc.inbox) {
    throw usageError(`source and destination are the same mail location (${fromLoc.root})`);
  }
  const source = openStore(from, storeOptions(settings));
  let dest: MailStore | undefined;
  try {
    // A dry run never creates the destination; one that does not exist yet plans as empty.
    dest = opts.dryRun && !existsSync(toLoc.root) ? undefined : openStore(to, { ...storeOptions(settings), create: !opts.dryRun });
  } catch (err) {
    void source.close();
    throw err;
  }
  return {
    source,
    dest,
    async close() {
      await dest?.close();
      await source.close();
    },
  };
}
