/**
 * Mailbox names as hierarchy parts. INBOX is case-insensitive (RFC 3501); nothing else is.
 */
import { usageError } from './errors.js';

export type MailboxName = readonly string[];

export function isInbox(name: MailboxName): boolean {
  return name.length === 1 && name[0]!.toUpperCase() === 'INBOX';
}

export function canonicalName(name: MailboxName): string[] {
  if (name.length > 0 && name[0]!.toUpperCase() === 'INBOX') return ['INBOX', ...name.slice(1)];
  return [...name];
}

/** Splits a name as a user typed it, on the store's hierarchy separator. */
export function parseMailboxName(text: string, separator: string): string[] {
  if (text === '') throw usageError('empty mailbox name');
  return canonicalName(text.split(separator));
}

export function formatMailboxName(name: MailboxName, separator: string): string {
  return name.join(separator);
}
