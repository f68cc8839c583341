/**
 * Full mailbox listings sent as differences from the previous one (see ListingReply in
 * wire-ops.ts), pure. The server remembers of each listing it sent only a fingerprint per
 * message (UID, length and a 53-bit hash of the record as it travels), never the records; the
 * client keeps the listing it was given and rebuilds the next from it and the difference. The
 * difference is computed from what the store lists, not from its modseqs, so it is exact for
 * any store: a record is left out only when its UID, length and hash are all unchanged.
 */
import type { ExpungedMessage, MailboxChanges, MessageMeta, SavedMessage, SystemFlag } from '../storage/store.js';
import { ProtocolError } from './protocol-error.js';
import type { ListingReply } from './wire-ops.js';
import { MAX_ITEMS } from './wire-message.js';
import { encodeExpunged, encodeMeta, meta } from './wire-records.js';

/** Listings each side keeps as bases: the engine lists a mailbox again before it moves on to the next. */
export const KEPT_LISTINGS = 4;

/** cyrb53: a fast 53-bit string hash (a safe integer, so it compares exactly as a number). */
export function hash53(text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** What the server keeps of one listing it sent. */
interface Fingerprint {
  id: number;
  uids: Uint32Array;
  lengths: Uint32Array;
  hashes: Float64Array;
  expunged: Float64Array;
}

function fingerprintOf(id: number, changes: MailboxChanges): Fingerprint | undefined {
  const n = changes.messages.length;
  const uids = new Uint32Array(n);
  const lengths = new Uint32Array(n);
  const hashes = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const m = changes.messages[i]!;
    // Only a listing in strictly ascending UID order can be walked against the next one.
    if (i > 0 && m.uid <= uids[i - 1]!) return undefined;
    const text = JSON.stringify(encodeMeta(m));
    uids[i] = m.uid;
    lengths[i] = text.length;
    hashes[i] = hash53(text);
  }
  const expunged = new Float64Array(changes.expunged.length);
  for (let i = 0; i < expunged.length; i++) expunged[i] = hash53(JSON.stringify(encodeExpunged(changes.expunged[i]!)));
  return { id, uids, lengths, hashes, expunged };
}

/**
 * A saved message as both sides know it once its save succeeded, without asking the store:
 * what the client sent (flags, keywords, date, the body's byte count) and what the store
 * answered (UID, GUID, modseq). Both sides take these into their last listing of the mailbox,
 * so the listing after a save does not bring them back; where the store lists a message
 * otherwise (its own size, keywords in another order), the next difference carries it.
 */
export function savedRecord(saved: SavedMessage, sent: { flags: readonly SystemFlag[]; keywords: readonly string[]; receivedDate: number; size: number }): MessageMeta {
  // Through the wire form and back, as a listed record would come: flags in their canonical order.
  return meta(encodeMeta({ uid: saved.uid, guid: saved.guid, modseq: saved.modseq, flags: [...sent.flags], keywords: [...sent.keywords], receivedDate: sent.receivedDate, size: sent.size }), 'saved record');
}

/** Merges records into a UID-sorted list; undefined when a UID is taken already or the list is out of order. */
function mergeByUid<T>(list: readonly T[], uidOf: (t: T) => number, added: readonly T[]): T[] | undefined {
  const extra = [...added].sort((a, b) => uidOf(a) - uidOf(b));
  const out: T[] = [];
  let j = 0;
  for (let i = 0; i < list.length; i++) {
    const u = uidOf(list[i]!);
    if (i > 0 && u <= uidOf(list[i - 1]!)) return undefined;
    while (j < extra.length && uidOf(extra[j]!) < u) out.push(extra[j++]!);
    if (j < extra.length && uidOf(extra[j]!) === u) return undefined;
    out.push(list[i]!);
  }
  while (j < extra.length) {
    if (out.length > 0 && uidOf(extra[j]!) <= uidOf(out[out.length - 1]!)) return undefined;
    out.push(extra[j++]!);
  }
  return out;
}

/** The server's side: the last listings sent on one connection, by mailbox. */
export class ListingMemory {
  private lastId = 0;
  private readonly byMailbox = new Map<string, Fingerprint>();

  /**
   * Messages just saved to `mailbox` join its last listing; false when they cannot (the
   * listing stays as it was: the next difference carries them) or there is none. The client is
   * told which, and does the same.
   */
  saved(mailbox: string, records: readonly MessageMeta[] | undefined): boolean {
    const prior = this.byMailbox.get(mailbox);
    if (!prior || !records) return false;
    const rows = mergeByUid(
      [...prior.uids].map((uid, i) => ({ uid, length: prior.lengths[i]!, hash: prior.hashes[i]! })),
      (r) => r.uid,
      records.map((m) => {
        const text = JSON.stringify(encodeMeta(m));
        return { uid: m.uid, length: text.length, hash: hash53(text) };
      }),
    );
    if (!rows) return false;
    this.byMailbox.set(mailbox, {
      id: prior.id,
      uids: Uint32Array.from(rows, (r) => r.uid),
      lengths: Uint32Array.from(rows, (r) => r.length),
      hashes: Float64Array.from(rows, (r) => r.hash),
      expunged: prior.expunged,
    });
    return true;
  }

  /**
   * The reply to a full listing of `mailbox`: relative to `base` when that is the listing last
   * sent for this mailbox (and still kept), else whole. Either way it becomes the new base.
   */
  reply(mailbox: string, changes: MailboxChanges, base: number | undefined): ListingReply {
    const prior = this.byMailbox.get(mailbox);
    this.byMailbox.delete(mailbox);
    const id = ++this.lastId;
    const now = fingerprintOf(id, changes);
    if (now) {
      this.byMailbox.set(mailbox, now);
      for (const key of this.byMailbox.keys()) {
        if (this.byMailbox.size <= KEPT_LISTINGS) break;
        this.byMailbox.delete(key);
      }
    }
    const whole: ListingReply = now ? { ...changes, listing: id } : { ...changes };
    if (!now || !prior || base === undefined || prior.id !== base) return whole;
    const messages: MessageMeta[] = [];
    const removed: number[] = [];
    let j = 0;
    for (let i = 0; i < now.uids.length; i++) {
      const uid = now.uids[i]!;
      while (j < prior.uids.length && prior.uids[j]! < uid) removed.push(prior.uids[j++]!);
      if (j < prior.uids.length && prior.uids[j] === uid) {
        const same = prior.hashes[j] === now.hashes[i] && prior.lengths[j] === now.lengths[i];
        j++;
        if (same) continue;
      }
      messages.push(changes.messages[i]!);
    }
    while (j < prior.uids.length) removed.push(prior.uids[j++]!);
    let kept = 0;
    while (kept < prior.expunged.length && kept < now.expunged.length && prior.expunged[kept] === now.expunged[kept]) kept++;
    // Only the base's expunges that are still listed, in order, are kept; the rest travel.
    if (kept < prior.expunged.length) kept = 0;
    return { ...changes, messages, expunged: changes.expunged.slice(kept), listing: id, base, removed, keptExpunged: kept };
  }
}

/** The client's side: the listings it was given, to rebuild the next ones from. */
export class ListingCache {
  private readonly byMailbox = new Map<string, { readonly id: number; changes: MailboxChanges }>();

  /** The base to name when asking for a full listing of `mailbox`. */
  baseFor(mailbox: string): number | undefined {
    return this.byMailbox.get(mailbox)?.id;
  }

  /**
   * The whole listing a reply stands for; kept as the next base when the server keeps it too.
   * `asked`: the base the request named (a reply may only build on that one), and whether it
   * asked for the whole mailbox: the reply to a listing of changes since a modseq is no listing
   * either side keeps, so it leaves the kept one as it was.
   */
  take(mailbox: string, reply: ListingReply, asked: { base: number | undefined; whole: boolean }): MailboxChanges {
    const { listing, base, removed, keptExpunged, ...changes } = reply;
    let whole: MailboxChanges = changes;
    if (base !== undefined) {
      if (base !== asked.base) throw new ProtocolError(`a listing relative to listing ${base}, which the request did not name`);
      const prior = this.byMailbox.get(mailbox);
      if (!prior || prior.id !== base) throw new ProtocolError(`a listing relative to listing ${base}, which this side does not hold`);
      whole = { ...changes, ...rebuild(prior.changes, changes.messages, removed ?? [], changes.expunged, keptExpunged ?? 0) };
    }
    if (!asked.whole) return whole;
    this.byMailbox.delete(mailbox);
    if (listing !== undefined) {
      this.byMailbox.set(mailbox, { id: listing, changes: whole });
      for (const key of this.byMailbox.keys()) {
        if (this.byMailbox.size <= KEPT_LISTINGS) break;
        this.byMailbox.delete(key);
      }
    }
    return whole;
  }

  /**
   * Messages just saved join the last listing of `mailbox` when the server says it took them
   * (`listed`); when it did but they cannot join here, the listing is forgotten, as the two no
   * longer agree. When the server did not, the listing stays as it was, as the server's does.
   */
  saved(mailbox: string, listed: boolean, records: readonly MessageMeta[] | undefined): void {
    const prior = this.byMailbox.get(mailbox);
    if (!prior || !listed) return;
    const messages = records && mergeByUid(prior.changes.messages, (m) => m.uid, records);
    if (!messages) this.byMailbox.delete(mailbox);
    else prior.changes = { ...prior.changes, messages };
  }

  /** Forgets every listing (the connection is over). */
  clear(): void {
    this.byMailbox.clear();
  }
}

function rebuild(
  prior: MailboxChanges,
  changed: readonly MessageMeta[],
  removed: readonly number[],
  expunged: readonly ExpungedMessage[],
  keptExpunged: number,
): { messages: MessageMeta[]; expunged: ExpungedMessage[] } {
  if (keptExpunged > prior.expunged.length) throw new ProtocolError(`a listing keeps ${keptExpunged} expunges of a base that has ${prior.expunged.length}`);
  for (let i = 1; i < changed.length; i++) {
    if (changed[i]!.uid <= changed[i - 1]!.uid) throw new ProtocolError('a listing whose changed messages are not in ascending UID order');
  }
  const gone = new Set(removed);
  const messages: MessageMeta[] = [];
  let c = 0;
  for (const m of prior.messages) {
    while (c < changed.length && changed[c]!.uid < m.uid) messages.push(changed[c++]!);
    if (c < changed.length && changed[c]!.uid === m.uid) {
      messages.push(changed[c++]!);
      continue;
    }
    if (!gone.has(m.uid)) messages.push(m);
  }
  while (c < changed.length) messages.push(changed[c++]!);
  // Each reply is held to MAX_ITEMS as it arrives; what a run of differences builds is held to it too.
  if (messages.length + keptExpunged + expunged.length > MAX_ITEMS) throw new ProtocolError(`a listing of more than ${MAX_ITEMS} records`);
  return { messages, expunged: [...prior.expunged.slice(0, keptExpunged), ...expunged] };
}
