/**
 * Where the messages went that a server without UIDPLUS appended. It names no UIDs, but they
 * are above every UID it had before the APPEND: the messages there that no earlier look has seen
 * are fetched with their Date and Message-ID, and each appended message takes the first of them,
 * in UID order, with its matching hash (header-hash.ts: the server may have rewritten the header,
 * and then the size too). Messages without Date and Message-ID all hash alike; those pair in
 * order only when the same number of them was sent and arrived, so a delivery at the same moment
 * is never taken for ours. What stays unpaired is left to the journal.
 */
import type { ImapFlow } from 'imapflow';
import { EMPTY_MATCHING_HASH, matchingHash } from '../../model/header-hash.js';
import { fetchMeta } from './imap-fetch.js';

export interface Arrived {
  uid: number;
  hash: string;
}

/** For each sent hash (in the order sent), the UID of its message among `arrived`, if proven. */
export function pairAppended(sent: readonly string[], arrived: readonly Arrived[]): (number | undefined)[] {
  const byUid = [...arrived].sort((a, b) => a.uid - b.uid);
  const used = new Set<number>();
  const out = sent.map((hash) => {
    if (hash === EMPTY_MATCHING_HASH) return undefined;
    const hit = byUid.find((a) => a.hash === hash && !used.has(a.uid));
    if (hit) used.add(hit.uid);
    return hit?.uid;
  });
  const unnamedSent = sent.flatMap((h, i) => (h === EMPTY_MATCHING_HASH ? [i] : []));
  const unnamedArrived = byUid.filter((a) => a.hash === EMPTY_MATCHING_HASH);
  if (unnamedSent.length > 0 && unnamedSent.length === unnamedArrived.length) unnamedSent.forEach((i, k) => (out[i] = unnamedArrived[k]!.uid));
  return out;
}

/**
 * `from`: no UID below it can be one of ours; `known`: UIDs already accounted for. Returns the
 * UIDs found (one per sent hash) and the `from` of the next look, past everything seen now.
 */
export async function findAppended(client: ImapFlow, sent: readonly string[], from: number, known: (serverUid: number) => boolean): Promise<{ uids: (number | undefined)[]; next: number }> {
  // `n:*` with n above the highest UID still answers the highest message; it is filtered out.
  const { messages } = await fetchMeta(client, `${from}:*`, { xGuid: false, headers: true, condstore: false });
  const arrived = messages.filter((m) => m.uid >= from && !known(m.uid)).map((m) => ({ uid: m.uid, hash: matchingHash(m.header ?? Buffer.alloc(0)) }));
  const next = messages.reduce((n, m) => Math.max(n, m.uid + 1), from);
  return { uids: pairAppended(sent, arrived), next };
}
