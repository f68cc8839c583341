/**
 * Special-use attributes for folders nobody assigned any to: the names Dovecot's stock
 * configuration (Debian's 15-mailboxes.conf) and the common clients use.
 */
import type { MailboxName } from '../store.js';

const BY_NAME = new Map<string, string>([
  ['sent', '\\Sent'],
  ['sent messages', '\\Sent'],
  ['sent items', '\\Sent'],
  ['drafts', '\\Drafts'],
  ['trash', '\\Trash'],
  ['deleted messages', '\\Trash'],
  ['deleted items', '\\Trash'],
  ['junk', '\\Junk'],
  ['spam', '\\Junk'],
  ['archive', '\\Archive'],
  ['archives', '\\Archive'],
]);

export function guessSpecialUse(name: MailboxName): string[] {
  if (name.length !== 1) return [];
  const use = BY_NAME.get(name[0]!.toLowerCase());
  return use ? [use] : [];
}
