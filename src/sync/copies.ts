/**
 * One GUID held more than once in a mailbox: a header hash shared by two copies of one post (a
 * store without GUIDs), or a message saved twice. The planners match messages by GUID, so each
 * copy gets its own key, the n-th copy by UID being `GUID\0n`: the first copies pair up, then the
 * second ones, and no copy hides behind another. Keys never leave the planners.
 */
import type { MessageMeta } from '../storage/store.js';

const COPY_MARK = '\u0000';

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

/** Whether every save landed at the UID it asked for (copies of one GUID in their order). */
export function gotWantedUids(wanted: readonly { guid: string; uid?: number }[], saved: readonly { guid: string; uid: number }[]): boolean {
  const queue = new Map<string, (number | undefined)[]>();
  for (const w of wanted) queue.set(w.guid, [...(queue.get(w.guid) ?? []), w.uid]);
  return saved.every((m) => {
    const uid = queue.get(m.guid)?.shift();
    return uid === undefined || uid === m.uid;
  });
}
