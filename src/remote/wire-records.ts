/**
 * The store contract's records as they travel: each with its encoder and its check. Records
 * that come by the thousand (messages, expunges, flag updates) are compact arrays; the rest
 * are objects. Pure.
 */
import type {
  ExpungedMessage,
  FlagUpdate,
  MailboxListChange,
  MailboxStatus,
  MessageMeta,
  PairMailboxState,
  SavedMessage,
  SyncedFlags,
} from '../storage/store.js';
import {
  bool,
  clockMs,
  count,
  fail,
  flagBits,
  flags,
  keywords,
  mailboxGuid,
  mailboxName,
  messageGuid,
  object,
  specialUse,
  str,
  time,
  tuple,
  uid,
  uidNext,
  uint32,
  type Check,
} from './wire-check.js';

const uidValidity = uid;
const modseq = count;

export function encodeStatus(s: MailboxStatus): Record<string, unknown> {
  return {
    name: s.name,
    guid: s.guid,
    uidValidity: s.uidValidity,
    uidNext: s.uidNext,
    highestModseq: s.highestModseq,
    messages: s.messages,
    specialUse: s.specialUse,
    subscribed: s.subscribed,
  };
}

export const status: Check<MailboxStatus> = (v, path) => {
  const o = object(v, path);
  return {
    name: mailboxName(o.name, `${path}.name`),
    guid: mailboxGuid(o.guid, `${path}.guid`),
    uidValidity: uidValidity(o.uidValidity, `${path}.uidValidity`),
    uidNext: uidNext(o.uidNext, `${path}.uidNext`),
    highestModseq: modseq(o.highestModseq, `${path}.highestModseq`),
    messages: uint32(o.messages, `${path}.messages`),
    specialUse: specialUse(o.specialUse ?? [], `${path}.specialUse`),
    subscribed: bool(o.subscribed, `${path}.subscribed`),
  };
};

export function encodeListChange(c: MailboxListChange): Record<string, unknown> {
  return { ...c };
}

export const listChange: Check<MailboxListChange> = (v, path) => {
  const o = object(v, path);
  const name = mailboxName(o.name, `${path}.name`);
  const timestamp = time(o.timestamp, `${path}.timestamp`);
  switch (o.type) {
    case 'create':
    case 'delete':
      return { type: o.type, guid: mailboxGuid(o.guid, `${path}.guid`), name, timestamp };
    case 'rename':
      return { type: 'rename', guid: mailboxGuid(o.guid, `${path}.guid`), name, oldName: mailboxName(o.oldName, `${path}.oldName`), timestamp };
    case 'subscribe':
    case 'unsubscribe':
      return { type: o.type, name, timestamp };
    default:
      return fail(`${path}.type`, 'create, rename, delete, subscribe or unsubscribe', o.type);
  }
};

/** [uid, guid, flag bits, modseq, receivedDate, size, keywords] */
export function encodeMeta(m: MessageMeta): unknown[] {
  return [m.uid, m.guid, flagBits(m.flags), m.modseq, m.receivedDate, m.size, m.keywords];
}

export const meta: Check<MessageMeta> = (v, path) => {
  const t = tuple(v, path, 7);
  return {
    uid: uid(t[0], `${path}.uid`),
    guid: messageGuid(t[1], `${path}.guid`),
    flags: flags(t[2], `${path}.flags`),
    modseq: modseq(t[3], `${path}.modseq`),
    receivedDate: clockMs(t[4], `${path}.receivedDate`),
    size: count(t[5], `${path}.size`),
    keywords: keywords(t[6], `${path}.keywords`),
  };
};

/** [uid, guid, modseq] */
export function encodeExpunged(e: ExpungedMessage): unknown[] {
  return [e.uid, e.guid, e.modseq];
}

export const expunged: Check<ExpungedMessage> = (v, path) => {
  const t = tuple(v, path, 3);
  return { uid: uid(t[0], `${path}.uid`), guid: messageGuid(t[1], `${path}.guid`), modseq: modseq(t[2], `${path}.modseq`) };
};

export function encodeSaved(s: SavedMessage): unknown[] {
  return [s.uid, s.guid, s.modseq];
}

export const saved: Check<SavedMessage> = (v, path) => {
  const t = tuple(v, path, 3);
  return { uid: uid(t[0], `${path}.uid`), guid: messageGuid(t[1], `${path}.guid`), modseq: modseq(t[2], `${path}.modseq`) };
};

/** [uid, flag bits, keywords] */
export function encodeFlagUpdate(u: FlagUpdate): unknown[] {
  return [u.uid, flagBits(u.flags), u.keywords];
}

export const flagUpdate: Check<FlagUpdate> = (v, path) => {
  const t = tuple(v, path, 3);
  return { uid: uid(t[0], `${path}.uid`), flags: flags(t[1], `${path}.flags`), keywords: keywords(t[2], `${path}.keywords`) };
};

/** [mailbox guid, uidValidity, uidNext, highestModseq, peer's three] */
export function encodePairEntry([guid, s]: [string, PairMailboxState]): unknown[] {
  return [guid, s.uidValidity, s.uidNext, s.highestModseq, s.peerUidValidity, s.peerUidNext, s.peerHighestModseq];
}

export const pairEntry: Check<[string, PairMailboxState]> = (v, path) => {
  const t = tuple(v, path, 7);
  // A pair state may remember a side that had no mailbox yet (zeros), so these start at 0.
  return [
    mailboxGuid(t[0], `${path}.guid`),
    {
      uidValidity: uint32(t[1], `${path}.uidValidity`),
      uidNext: uint32Next(t[2], `${path}.uidNext`),
      highestModseq: modseq(t[3], `${path}.highestModseq`),
      peerUidValidity: uint32(t[4], `${path}.peerUidValidity`),
      peerUidNext: uint32Next(t[5], `${path}.peerUidNext`),
      peerHighestModseq: modseq(t[6], `${path}.peerHighestModseq`),
    },
  ];
};

/**
 * Which entries of a pair state are proven (PairMailboxState.proven), beside the entries
 * rather than in them: one character per entry, '1' for proven, sent only when one is. A peer
 * of an older version ignores the field and sends none, which leaves every entry unproven:
 * the next sync of a changed mailbox then compares it whole.
 */
export function encodeProofs(entries: readonly [string, PairMailboxState][]): { proven?: string } {
  if (!entries.some(([, s]) => s.proven === true)) return {};
  return { proven: entries.map(([, s]) => (s.proven === true ? '1' : '0')).join('') };
}

/** The entries with their marks put back; a mark string that does not fit them is the peer's fault. */
export function withProofs(entries: [string, PairMailboxState][], marks: unknown, path: string): [string, PairMailboxState][] {
  if (marks === undefined) return entries;
  if (typeof marks !== 'string' || marks.length !== entries.length || !/^[01]*$/.test(marks)) fail(path, `a string of ${entries.length} 0s and 1s`, marks);
  return entries.map(([guid, s], i) => [guid, marks[i] === '1' ? { ...s, proven: true } : s]);
}

function uint32Next(v: unknown, path: string): number {
  return v === 0 ? 0 : uidNext(v, path);
}

/** [message guid, flag bits, keywords] */
export function encodeSyncedEntry(e: { guid: string } & SyncedFlags): unknown[] {
  return [e.guid, flagBits(e.flags), e.keywords];
}

export const syncedEntry: Check<{ guid: string } & SyncedFlags> = (v, path) => {
  const t = tuple(v, path, 3);
  return { guid: messageGuid(t[0], `${path}.guid`), flags: flags(t[1], `${path}.flags`), keywords: keywords(t[2], `${path}.keywords`) };
};

/** [uid, number]: a header hash or a time, keyed by UID. */
export function uidPair<T>(value: Check<T>): Check<[number, T]> {
  return (v, path) => {
    const t = tuple(v, path, 2);
    return [uid(t[0], `${path}.uid`), value(t[1], `${path}.value`)];
  };
}

export const headerHash = str(128, /^[0-9a-f]+$/, 'hex digits');

