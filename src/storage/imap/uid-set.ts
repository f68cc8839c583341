/** IMAP sequence sets (`1:3,7,9:12`) to and from UID lists. */

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

/** `*` is not allowed here: a server only sends sets of real UIDs. */
export function parseUidSet(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',')) {
    if (part === '') continue;
    const [a, b] = part.split(':').map(Number);
    if (!Number.isInteger(a)) continue;
    const lo = Math.min(a!, b ?? a!);
    const hi = Math.max(a!, b ?? a!);
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
