/**
 * One GUID held more than once in a mailbox: a header hash shared by two copies of one post (a
 * store without GUIDs), or a message saved twice. The planners match messages by GUID, so each
 * copy gets its own key, the n-th copy by UID being `GUID\0n`: the first copies pair up, then the
 * second ones, and no copy hides behind another. Keys never leave the planners.
 */
import type { MessageMeta } from '../storage/store.js';

const COPY_MARK = '\u0000';

/** Which copy of its GUID a key names: 0 for the first. */
export function copyIndexOf(key: string): number {
  const at = key.indexOf(COPY_MARK);
  return at < 0 ? 0 : Number(key.slice(at + 1));
}

/** Listings are sorted by UID, so both sides number their copies alike. */
export function distinguishCopies(messages: readonly MessageMeta[]): readonly MessageMeta[] {
  const seen = new Map<string, number>();
  let copies = false;
  const keyed = messages.map((m) => {
    const n = seen.get(m.guid) ?? 0;
    seen.set(m.guid, n + 1);
    if (n === 0) return m;
    copies = true;
    return { ...m, guid: `${m.guid}${COPY_MARK}${n}` };
  });
  return copies ? keyed : messages;
}

/** The GUID a key stands for. */
export function guidOf(key: string): string {
  const at = key.indexOf(COPY_MARK);
  return at < 0 ? key : key.slice(0, at);
}

/**
 * How a copy's key is kept where keys must leave the planners: the agreed flags of each copy,
 * which the stores keep by message GUID. The first copy is its GUID; the n-th after it is
 * "GUID n": no GUID holds a space (none would survive a dovecot-uidlist line), so none is taken
 * for a copy's.
 */
export function storedKeyOf(key: string): string {
  const n = copyIndexOf(key);
  return n === 0 ? key : `${guidOf(key)} ${n}`;
}

export function keyOfStored(stored: string): string {
  const m = /^(.*) (\d+)$/.exec(stored);
  return m ? `${m[1]}${COPY_MARK}${m[2]}` : stored;
}

/** Per GUID, the wanted saves in order: copies of one GUID are told apart by their order. */
function queuesByGuid<T extends { guid: string }>(wanted: readonly T[]): Map<string, T[]> {
  const queues = new Map<string, T[]>();
  for (const w of wanted) queues.set(w.guid, [...(queues.get(w.guid) ?? []), w]);
  return queues;
}

/** Whether every save landed at the UID it asked for. */
export function gotWantedUids(wanted: readonly { guid: string; uid?: number }[], saved: readonly { guid: string; uid: number }[]): boolean {
  const queues = queuesByGuid(wanted);
  return saved.every((m) => {
    const uid = queues.get(m.guid)?.shift()?.uid;
    return uid === undefined || uid === m.uid;
  });
}

/** Bytes of the saves a store reported as saved (it may have refused some). */
export function savedBytes(wanted: readonly { guid: string; size: number }[], saved: readonly { guid: string }[]): number {
  const queues = queuesByGuid(wanted);
  return saved.reduce((n, m) => n + (queues.get(m.guid)?.shift()?.size ?? 0), 0);
}
