/**
 * Untagged LIST and STATUS answers, read from imapflow's parse tree by hand (see imap-list.ts).
 * Whatever the server sends, these give a value: numbers that are not numbers are left out
 * rather than thrown on, so one odd mailbox cannot stop a listing.
 */
import type { KnownStatus } from './imap-mailbox-sync.js';
import type { RawAttribute, RawUntagged } from './imap-session.js';

export function listText(a: unknown): string {
  const v = Array.isArray(a) ? undefined : (a as RawAttribute | undefined)?.value;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return typeof v === 'string' ? v : '';
}

export interface ListLine {
  flags: string[];
  delimiter: string;
  /** As sent: still modified UTF-7 unless UTF8=ACCEPT is on. */
  path: string;
}

export function parseListLine(u: RawUntagged): ListLine {
  const attrs: unknown[] = Array.isArray(u?.attributes) ? u.attributes : [];
  const flags = (Array.isArray(attrs[0]) ? (attrs[0] as unknown[]) : []).map(listText).filter((f) => f !== '');
  return { flags, delimiter: listText(attrs[1]), path: listText(attrs[2]) };
}

const DIGITS = /^\d{1,20}$/;

/** The mailbox a STATUS answer is about, as sent, and what it says of it. */
export function parseStatusLine(u: RawUntagged): { path: string; status: KnownStatus } {
  const attrs: unknown[] = Array.isArray(u?.attributes) ? u.attributes : [];
  const list: unknown[] = Array.isArray(attrs[1]) ? attrs[1] : [];
  const status: KnownStatus = {};
  for (let i = 0; i + 1 < list.length; i += 2) {
    const key = listText(list[i]).toUpperCase();
    const value = listText(list[i + 1]);
    if (!DIGITS.test(value)) continue;
    const n = Number(value);
    if (key === 'MESSAGES') status.messages = n;
    else if (key === 'UIDNEXT') status.uidNext = n;
    else if (key === 'UIDVALIDITY') status.uidValidity = n;
    else if (key === 'HIGHESTMODSEQ') status.highestModseq = BigInt(value);
  }
  return { path: listText(attrs[0]), status };
}
