/**
 * Listings of one mailbox that hold only what changed since the last proven sync of the pair,
 * so that a run after 1,000 changes in a 100,000-message mailbox plans 1,000 messages, not
 * 100,000 twice (once to plan, once to prove nothing changed meanwhile).
 *
 * Why it is enough. A pair state is recorded only by a run whose own final check found the
 * two sides equal: the same messages (GUID, copy by copy) at the same UIDs with the same flags
 * and keywords, and the same UIDNEXT. Every change a side makes after that, ours or another
 * program's, gets a modseq above the recorded one and shows in `getMessages(name, since)`:
 * a new or changed message as its record, an expunge with its UID and GUID. So a UID that
 * neither side's changes name holds, on both sides, the same message as it did then, or
 * nothing on both. The affected set is every UID and every GUID in either side's changes; each
 * side is asked for the messages at those UIDs and for every copy of those GUIDs, and then for
 * every copy of the GUIDs that brought (a message found at a changed UID of the other side),
 * until nothing new comes. Each GUID is then complete on both sides, so `distinguishCopies`
 * numbers the copies as it would in the whole listings, and planning the subsets gives exactly
 * the plan of the whole listings: what lies outside them is equal pairs, which plan nothing.
 *
 * The final check after applying is the same reading again (changes since the same recorded
 * modseqs, which now include the run's own), planned with no history: empty means equal on
 * the affected set, hence everywhere; the numbers it read are what the run records.
 *
 * Each reading must be one state of a side: the changes and the records of the same moment.
 * When a side moved between its two calls (its HIGHESTMODSEQ or UIDVALIDITY differs), an
 * expunge could be missing from the changes while its message is already gone from the
 * records, and the other side's copy would be taken for new mail; such a reading is refused
 * and the engine lists the mailbox whole, as it does for any other doubt (see sync.ts).
 */
import type { MailboxChanges, MailboxName, MailStore, MessagesOf, PairMailboxState } from '../storage/store.js';

interface Side {
  store: MailStore;
  name: MailboxName;
}

/** Some records of a mailbox; only stores that read them in part are synced incrementally (sync.ts). */
function messagesOf(side: Side, uids: ReadonlySet<number>, guids: ReadonlySet<string>): Promise<MessagesOf> {
  return side.store.getMessagesOf!(side.name, { uids, guids });
}

const sameMoment = (x: Pick<MessagesOf, 'uidValidity' | 'highestModseq'>, y: Pick<MessagesOf, 'uidValidity' | 'highestModseq'>) =>
  x.uidValidity === y.uidValidity && x.highestModseq === y.highestModseq;

/**
 * Both sides' listings restricted to what changed since `state` (A's pair state of the
 * mailbox), or undefined when either side cannot answer incrementally or moved while read.
 * The listings' `expunged` are the expunges since the recorded modseqs, as a whole listing's
 * would be after `expungedInstances` with the same modseqs.
 */
export async function changedListings(a: Side, b: Side, state: PairMailboxState): Promise<{ ma: MailboxChanges; mb: MailboxChanges } | undefined> {
  const ca = await a.store.getMessages(a.name, state.highestModseq);
  const cb = await b.store.getMessages(b.name, state.peerHighestModseq);
  if (!ca.incremental || !cb.incremental || ca.uidValidity !== state.uidValidity || cb.uidValidity !== state.peerUidValidity) return undefined;
  const uids = new Set<number>();
  const guids = new Set<string>();
  for (const c of [ca, cb]) {
    for (const m of c.messages) uids.add(m.uid), guids.add(m.guid);
    for (const e of c.expunged) uids.add(e.uid), guids.add(e.guid);
  }
  let ra: MessagesOf | undefined;
  let rb: MessagesOf | undefined;
  // A second round finds no new GUID (it asked for every copy of each); a third is a safety net.
  for (let round = 0; round < 3; round++) {
    ra = await messagesOf(a, uids, guids);
    rb = await messagesOf(b, uids, guids);
    if (!sameMoment(ra, ca) || !sameMoment(rb, cb)) return undefined;
    const before = guids.size;
    for (const m of [...ra.messages, ...rb.messages]) guids.add(m.guid);
    if (guids.size === before) break;
    if (round === 2) return undefined;
  }
  const listing = (c: MailboxChanges, r: MessagesOf): MailboxChanges => ({
    uidValidity: c.uidValidity,
    uidNext: c.uidNext,
    highestModseq: c.highestModseq,
    messages: r.messages,
    expunged: c.expunged,
    incremental: true,
    ...(c.skipped !== undefined ? { skipped: c.skipped } : {}),
  });
  return { ma: listing(ca, ra!), mb: listing(cb, rb!) };
}
