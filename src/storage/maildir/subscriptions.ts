/**
 * The `subscriptions` file at the mail root, read and written under Dovecot's dotlock (mbox
 * roots use the same format under another name, see mbox-subscriptions.ts).
 */
import { join } from 'node:path';
import { readFileIfExists } from '../safe-fs.js';
import { decodeMutf7, encodeMutf7 } from '../../model/mutf7.js';
import type { MailboxName } from '../store.js';
import { Dotlock, type DotlockOptions } from './dotlock.js';
import { canonicalName } from './layout.js';
import { formatSubscriptions, parseSubscriptions } from './subscriptions-file.js';

export const SUBSCRIPTIONS_FILENAME = 'subscriptions';

export function readSubscriptions(root: string, separator: string, warn: (msg: string) => void, filename = SUBSCRIPTIONS_FILENAME): MailboxName[] {
  const path = join(root, filename);
  const bytes = readFileIfExists(path);
  if (bytes === undefined) return [];
  const text = bytes.toString('utf8');
  const names: MailboxName[] = [];
  for (const parts of parseSubscriptions(text, separator, path)) {
    try {
      names.push(canonicalName(parts.map(decodeMutf7)));
    } catch (err) {
      warn(`${path}: ignoring subscription '${parts.join(separator)}': ${(err as Error).message}`);
    }
  }
  return names;
}

export async function writeSubscriptions(root: string, names: readonly MailboxName[], options: DotlockOptions, filename = SUBSCRIPTIONS_FILENAME): Promise<void> {
  const lock = await Dotlock.acquire(join(root, filename), options);
  try {
    lock.replace(formatSubscriptions(names.map((n) => n.map(encodeMutf7))));
  } finally {
    lock.release();
  }
}
