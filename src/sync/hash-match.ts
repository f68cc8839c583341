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
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { MailferryError } from '../model/errors.js';
import { EMPTY_HEADER_HASH, EMPTY_MATCHING_HASH, headerBlockOf, matchingHash } from '../model/header-hash.js';
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
 * The side that takes the other's GUIDs for matched messages: one without native GUIDs (B when
 * neither has them); with both native, one that can still keep a GUID it is given (an IMAP
 * store with X-GUIDs remembers GUIDs in its side index: when that index is lost, the server's
 * X-GUIDs are not the GUIDs the mail was copied under, and nothing would pair by GUID).
 */
function adopterOf(a: Side, b: Side): 'a' | 'b' | undefined {
  if (!b.store.nativeGuids) return 'b';
  if (!a.store.nativeGuids) return 'a';
  if (b.store.adoptGuids) return 'b';
  if (a.store.adoptGuids) return 'a';
  return undefined;
}

export interface HashMatched {
  ma: MailboxChanges;
  mb: MailboxChanges;
  /**
   * Pairs the identities alone did not make although both are the same mail (a store with
   * native GUIDs took the other side's GUID, or mail without Date and Message-ID was paired by
   * content): worth a warning.
   */
  mismatched: number;
}

/**
 * Returns the listings with matched messages under one GUID (the non-adopting side's), after
 * telling the adopting store, unless `dryRun`.
 */
export async function matchByHeaderHash(
  a: Side,
  ma: MailboxChanges,
  b: Side,
  mb: MailboxChanges,
  options: { dryRun?: boolean; provenSince?: { a: number | undefined; b: number | undefined } } = {},
): Promise<HashMatched> {
  ma = oneEntryPerUid(ma);
  mb = oneEntryPerUid(mb);
  const adopter = adopterOf(a, b);
  if (!adopter) return { ma, mb, mismatched: 0 };
  const guidsA = new Set(ma.messages.map((m) => m.guid));
  const guidsB = new Set(mb.messages.map((m) => m.guid));
  // A GUID the other side expunged is a proven deletion, not a candidate for a match.
  const goneA = provenExpunges(ma, options.provenSince?.a);
  const goneB = provenExpunges(mb, options.provenSince?.b);
  const loneA = ma.messages.filter((m) => !guidsB.has(m.guid) && !goneB.has(m.guid)).map((m) => m.uid);
  const loneB = mb.messages.filter((m) => !guidsA.has(m.guid) && !goneA.has(m.guid)).map((m) => m.uid);
  if (loneA.length === 0 || loneB.length === 0) return { ma, mb, mismatched: 0 };

  const [hashesA, hashesB] = [await a.store.messageHashes(a.name, loneA), await b.store.messageHashes(b.name, loneB)];
  const pairs = pairByHash(hashesA, hashesB);
  const byContent = await pairNamelessByContent(a, unpaired(hashesA, pairs, 'uidA'), b, unpaired(hashesB, pairs, 'uidB'));
  pairs.push(...byContent);
  if (pairs.length === 0) return { ma, mb, mismatched: 0 };
  const bAdopts = adopter === 'b';
  const guidOfA = new Map(ma.messages.map((m) => [m.uid, m.guid]));
  const guidOfB = new Map(mb.messages.map((m) => [m.uid, m.guid]));
  const adopted = new Map<number, string>(); // adopting side's UID -> new GUID
  for (const p of pairs) {
    if (bAdopts) adopted.set(p.uidB, guidOfA.get(p.uidA)!);
    else adopted.set(p.uidA, guidOfB.get(p.uidB)!);
  }
  const [side, listing] = bAdopts ? [b, mb] : [a, ma];
  if (!options.dryRun) {
    if (!side.store.adoptGuids) throw new Error(`${side.store.location} has no native GUIDs but cannot adopt them`);
    await side.store.adoptGuids(side.name, [...adopted].map(([uid, guid]) => ({ uid, guid })));
  }
  const rewritten: MailboxChanges = { ...listing, messages: listing.messages.map((m) => (adopted.has(m.uid) ? { ...m, guid: adopted.get(m.uid)! } : m)) };
  const mismatched = side.store.nativeGuids ? adopted.size : byContent.length;
  return bAdopts ? { ma, mb: rewritten, mismatched } : { ma: rewritten, mb, mismatched };
}

/** The UIDs of messages without Date and Message-ID that `pairs` left alone. */
function unpaired(hashes: ReadonlyMap<number, string>, pairs: readonly HashPair[], side: 'uidA' | 'uidB'): number[] {
  const taken = new Set(pairs.map((p) => p[side]));
  return [...hashes].filter(([uid, hash]) => identifiesNothing(hash) && !taken.has(uid)).map(([uid]) => uid);
}

/**
 * Messages without Date and Message-ID all hash alike, so the header hash proves nothing about
 * them; left alone, a backup whose destination lost its GUIDs expunges and uploads each again.
 * They are rare, so they are read whole and paired when From, To, Cc, Subject (whitespace and
 * field-name case aside, as servers rewrite them) and the body are the same: a pairing then
 * loses nothing, since the two are the same mail.
 */
async function pairNamelessByContent(a: Side, uidsA: readonly number[], b: Side, uidsB: readonly number[]): Promise<HashPair[]> {
  if (uidsA.length === 0 || uidsB.length === 0) return [];
  const [ka, kb] = [await contentKeys(a, uidsA), await contentKeys(b, uidsB)];
  const waiting = new Map<string, number[]>();
  for (const [uid, key] of [...kb].sort((x, y) => x[0] - y[0])) waiting.set(key, [...(waiting.get(key) ?? []), uid]);
  const pairs: HashPair[] = [];
  for (const [uidA, key] of [...ka].sort((x, y) => x[0] - y[0])) {
    const uidB = waiting.get(key)?.shift();
    if (uidB !== undefined) pairs.push({ uidA, uidB });
  }
  return pairs;
}

const CONTENT_FIELDS = ['from', 'to', 'cc', 'subject'];

async function contentKeys(side: Side, uids: readonly number[]): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const uid of uids) {
    let body: Buffer;
    try {
      body = await readAll(await side.store.openMessage(side.name, uid));
    } catch (err) {
      if (err instanceof MailferryError && err.kind === 'notfound') continue; // expunged meanwhile
      throw err;
    }
    const header = headerBlockOf(body);
    const text = createHash('md5').update(body.subarray(header.length)).digest('hex');
    out.set(uid, `${matchingHash(header, CONTENT_FIELDS)}:${text}`);
  }
  return out;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

/**
 * UIDs at which both listings hold a message under different GUIDs but with the same matching
 * hash: one message known by two names (a copy made by another program, a rebuilt index), not
 * a UID holding another message. Only such UIDs have their headers read, so listings that agree
 * cost nothing. For planners that compare by UID (mailbox-plan.ts).
 */
export async function sameMessagesAtClashingUids(a: Side, ma: MailboxChanges, b: Side, mb: MailboxChanges): Promise<Set<number>> {
  const guidOfB = new Map(mb.messages.map((m) => [m.uid, m.guid]));
  const clashing = ma.messages.filter((m) => guidOfB.has(m.uid) && guidOfB.get(m.uid) !== m.guid).map((m) => m.uid);
  if (clashing.length === 0) return new Set();
  const [ha, hb] = [await a.store.messageHashes(a.name, clashing), await b.store.messageHashes(b.name, clashing)];
  return new Set(clashing.filter((uid) => ha.has(uid) && !identifiesNothing(ha.get(uid)!) && ha.get(uid) === hb.get(uid)));
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
