/**
 * Subscriptions of an mbox root: ROOT/.subscriptions, Dovecot's file name for mbox (a plain
 * `subscriptions` would be listed as a mailbox), in Dovecot's version 2 format, under its dotlock.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fsError } from '../../model/errors.js';
import { canonicalName } from '../../model/mailbox-name.js';
import { decodeMutf7, encodeMutf7 } from '../../model/mutf7.js';
import { Dotlock, type DotlockOptions } from '../maildir/dotlock.js';
import { formatSubscriptions, parseSubscriptions } from '../maildir/subscriptions-file.js';
import type { MailboxName } from '../store.js';
import { MBOX_SEPARATOR } from './mbox-layout.js';

export const MBOX_SUBSCRIPTIONS_FILENAME = '.subscriptions';

export function readMboxSubscriptions(root: string, warn: (msg: string) => void): MailboxName[] {
  const path = join(root, MBOX_SUBSCRIPTIONS_FILENAME);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fsError(err, path);
  }
  const names: MailboxName[] = [];
  for (const parts of parseSubscriptions(text, MBOX_SEPARATOR, path)) {
    try {
      names.push(canonicalName(parts.map(decodeMutf7)));
    } catch (err) {
      warn(`${path}: ignoring subscription '${parts.join(MBOX_SEPARATOR)}': ${(err as Error).message}`);
    }
  }
  return names;
}

export async function writeMboxSubscriptions(root: string, names: readonly MailboxName[], options: DotlockOptions): Promise<void> {
  const lock = await Dotlock.acquire(join(root, MBOX_SUBSCRIPTIONS_FILENAME), options);
  try {
    lock.replace(formatSubscriptions(names.map((n) => n.map(encodeMutf7))));
  } finally {
    lock.release();
  }
}
