/** IMAP sequence sets (`1:3,7,9:12`) to and from UID lists. */
import { dataError } from '../../model/errors.js';

export function formatUidSet(uids: Iterable<number>): string {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** More UIDs than any mailbox we read holds: a set expanding past it is not believed. */
export const MAX_UIDS_IN_SET = 1 << 22;

/**
 * `*` is not allowed here: a server only sends sets of real UIDs. What is not a number is
 * skipped; a set naming more than `limit` UIDs (`1:4294967295`) is a data error rather than
 * an array of billions.
 */
export function parseUidSet(text: string, limit = MAX_UIDS_IN_SET): number[] {
  const out: number[] = [];
  for (const part of String(text).split(',')) {
    const m = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(part.trim());
    if (!m) continue;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    if (out.length + (hi - lo + 1) > limit) throw dataError(`the server sent a UID set of more than ${limit} UIDs (${part.slice(0, 40)})`);
    for (let u = lo; u <= hi; u++) out.push(u);
  }
  return out;
}

/** Splits a long UID list into sets short enough for one command line each. */
export function chunkUids(uids: readonly number[], size = 2000): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < uids.length; i += size) out.push(uids.slice(i, i + size));
  return out;
}
