/**
 * Matching by header hash, for stores without native GUIDs (mbox, IMAP servers without X-GUID).
 *
 * Such a store calls a message by its header hash until someone tells it otherwise, while a
 * Maildir calls the same message by its basename. Two sides that already hold the same mail
 * before their first sync (a half-finished migration whose state was lost, a spool copied by
 * hand) would each see the other's copy as new and duplicate everything. So, as dsync does,
 * messages that found no partner by GUID are paired by the hash of their Date and Message-ID
 * headers; the side without native GUIDs then adopts the partner's GUID and keeps it in its
 * index, so the next run matches by GUID at once and reads no headers.
 */
import { EMPTY_HEADER_HASH, EMPTY_MATCHING_HASH } from '../model/header-hash.js';
import type { MailboxChanges, MailboxName, MailStore } from '../storage/store.js';

interface Side {
  store: MailStore;
  name: MailboxName;
}

export interface HashPair {
  uidA: number;
  uidB: number;
}

/**
 * Pairs equal hashes, lowest UIDs first, one to one: two copies on one side and one on the
 * other make one pair and one message left to copy. Messages without Date and Message-ID all
 * hash alike, so they are never paired (a false match would lose a message).
 */
export function pairByHash(a: ReadonlyMap<number, string>, b: ReadonlyMap<number, string>): HashPair[] {
  const waiting = new Map<string, number[]>();
  for (const [uid, hash] of [...b].sort((x, y) => x[0] - y[0])) {
    if (identifiesNothing(hash)) continue;
    const list = waiting.get(hash);
    if (list) list.push(uid);
    else waiting.set(hash, [uid]);
  }
  const pairs: HashPair[] = [];
  for (const [uidA, hash] of [...a].sort((x, y) => x[0] - y[0])) {
    const uidB = identifiesNothing(hash) ? undefined : waiting.get(hash)?.shift();
    if (uidB !== undefined) pairs.push({ uidA, uidB });
  }
  return pairs;
}

/**
 * A listing naming one UID twice (a server with a broken index) keeps the first entry: a UID
 * names one message, and to a planner two GUIDs at one UID look like a UID holding another
 * message, which a backup answers by emptying the mailbox and copying it again, every run.
 */
export function oneEntryPerUid(x: MailboxChanges): MailboxChanges {
  const seen = new Set<number>();
  const messages = x.messages.filter((m) => !seen.has(m.uid) && (seen.add(m.uid), true));
  return messages.length === x.messages.length ? x : { ...x, messages };
}

/** The hash of a header without Date and Message-ID, of either kind (header-hash.ts). */
function identifiesNothing(hash: string): boolean {
  return hash === EMPTY_MATCHING_HASH || hash === EMPTY_HEADER_HASH;
}

/**
 * Returns the listings with matched messages under one GUID (the native side's; A's when
 * neither is native), after telling the adopting store, unless `dryRun`.
 */
export async function matchByHeaderHash(
  a: Side,
  ma: MailboxChanges,
  b: Side,
  mb: MailboxChanges,
  options: { dryRun?: boolean; provenSince?: { a: number | undefined; b: number | undefined } } = {},
): Promise<{ ma: MailboxChanges; mb: MailboxChanges }> {
  ma = oneEntryPerUid(ma);
  mb = oneEntryPerUid(mb);
  if (a.store.nativeGuids && b.store.nativeGuids) return { ma, mb };
  const guidsA = new Set(ma.messages.map((m) => m.guid));
  const guidsB = new Set(mb.messages.map((m) => m.guid));
  // A GUID the other side expunged is a proven deletion, not a candidate for a match.
  const goneA = provenExpunges(ma, options.provenSince?.a);
  const goneB = provenExpunges(mb, options.provenSince?.b);
  const loneA = ma.messages.filter((m) => !guidsB.has(m.guid) && !goneB.has(m.guid)).map((m) => m.uid);
  const loneB = mb.messages.filter((m) => !guidsA.has(m.guid) && !goneA.has(m.guid)).map((m) => m.uid);
  if (loneA.length === 0 || loneB.length === 0) return { ma, mb };

  const pairs = pairByHash(await a.store.messageHashes(a.name, loneA), await b.store.messageHashes(b.name, loneB));
  if (pairs.length === 0) return { ma, mb };
  const bAdopts = !b.store.nativeGuids;
  const guidOfA = new Map(ma.messages.map((m) => [m.uid, m.guid]));
  const guidOfB = new Map(mb.messages.map((m) => [m.uid, m.guid]));
  const adopted = new Map<number, string>(); // adopting side's UID -> new GUID
  for (const p of pairs) {
    if (bAdopts) adopted.set(p.uidB, guidOfA.get(p.uidA)!);
    else adopted.set(p.uidA, guidOfB.get(p.uidB)!);
  }
  const [adopter, listing] = bAdopts ? [b, mb] : [a, ma];
  if (!options.dryRun) {
    if (!adopter.store.adoptGuids) throw new Error(`${adopter.store.location} has no native GUIDs but cannot adopt them`);
    await adopter.store.adoptGuids(adopter.name, [...adopted].map(([uid, guid]) => ({ uid, guid })));
  }
  const rewritten: MailboxChanges = { ...listing, messages: listing.messages.map((m) => (adopted.has(m.uid) ? { ...m, guid: adopted.get(m.uid)! } : m)) };
  return bAdopts ? { ma, mb: rewritten } : { ma: rewritten, mb };
}

/**
 * The GUIDs whose expunge proves a deletion the other side must follow. Since the last sync of
 * the pair, only expunges made after it count: an older one was already carried over, and the
 * same GUID showing up again on the other side is the message come back (moved back from the
 * Trash, or a new copy with the same header hash), not a deletion to repeat. Without a last sync
 * the whole remembered log is the proof, as in dsync.
 */
export function provenExpunges(x: MailboxChanges, since: number | undefined): Set<string> {
  return new Set(expungedInstances(x, since).keys());
}

/** The same expunges by GUID, each with the UIDs it was expunged at. */
export function expungedInstances(x: MailboxChanges, since: number | undefined): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const e of x.expunged) if (since === undefined || e.modseq > since) out.set(e.guid, [...(out.get(e.guid) ?? []), e.uid]);
  return out;
}
