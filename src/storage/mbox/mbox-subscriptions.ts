/**
 * Subscriptions of an mbox root: ROOT/.subscriptions, Dovecot's file name for mbox (a plain
 * `subscriptions` would be listed as a mailbox), in the same format as a Maildir's, under its dotlock.
 */
import type { DotlockOptions } from '../maildir/dotlock.js';
import { readSubscriptions, writeSubscriptions } from '../maildir/subscriptions.js';
import type { MailboxName } from '../store.js';
import { MBOX_SEPARATOR } from './mbox-layout.js';

export const MBOX_SUBSCRIPTIONS_FILENAME = '.subscriptions';

export function readMboxSubscriptions(root: string, warn: (msg: string) => void): MailboxName[] {
  return readSubscriptions(root, MBOX_SEPARATOR, warn, MBOX_SUBSCRIPTIONS_FILENAME);
}

export function writeMboxSubscriptions(root: string, names: readonly MailboxName[], options: DotlockOptions): Promise<void> {
  return writeSubscriptions(root, names, options, MBOX_SUBSCRIPTIONS_FILENAME);
}
