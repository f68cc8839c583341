/**
 * Every request the client makes and every reply the server gives: one entry per operation of
 * the store contract, each with a check of the request and of the reply, so nothing a peer
 * sends is used before it was taken apart field by field. Long arrays (a mailbox's messages, a
 * list of flag updates) are `chunked`: they may come in Part frames ahead of the final frame,
 * each item checked as it arrives. Pure.
 */
import type {
  ExpungedMessage,
  FlagUpdate,
  MailboxList,
  MailboxChanges,
  MailboxStatus,
  MailboxUpdate,
  MessageMeta,
  MessagesOf,
  PairMailboxState,
  SavedMessage,
  SyncedFlags,
  SystemFlag,
} from '../storage/store.js';
import { nameRules, type NameRules } from './name-rules.js';
import {
  arrayOf,
  bool,
  clockMs,
  count,
  fail,
  flagBits,
  flags,
  int,
  keywords,
  mailboxGuid,
  mailboxName,
  messageGuid,
  object,
  optional,
  peerKey,
  specialUse,
  str,
  uid,
  uidNext,
  uint32,
  type Check,
} from './wire-check.js';
import * as rec from './wire-records.js';

export interface WireSpec<T> {
  /** Array fields that may come in Part frames, with the check of one item. */
  readonly chunked: Readonly<Record<string, Check<unknown>>>;
  /** Builds the value from the final frame's object; its chunked fields are complete and checked. */
  decode(o: Record<string, unknown>, path: string): T;
  /** The object to send; chunked fields hold items in their wire form. */
  encode(value: T): Record<string, unknown>;
}

type Obj = Record<string, unknown>;

function spec<T>(decode: (o: Obj, path: string) => T, encode: (v: T) => Obj, chunked: Record<string, Check<unknown>> = {}): WireSpec<T> {
  return { decode, encode, chunked };
}

const empty = spec<Record<string, never>>(() => ({}), () => ({}));

/** The optional store methods a server's store may have; the client offers the same. */
export const OPTIONAL_METHODS = ['adoptGuids', 'getSyncedFlags', 'setSyncedFlags', 'flagChangeTimes', 'getMessagesOf'] as const;
export type OptionalMethod = (typeof OPTIONAL_METHODS)[number];

export interface OpenRequest {
  /** Create the location when missing (a destination). */
  create: boolean;
  /** --force: open a destination holding files that are not mail. */
  force: boolean;
  /** Seconds to wait for locks on the mail, and for the run lock. */
  lockSeconds: number;
  /** Take the run lock of the location, as a local run would (-l). */
  runLock: boolean;
}

export interface StoreInfo {
  location: string;
  storeId: string;
  separator: string;
  nativeGuids: boolean;
  assignsOwnUids: boolean;
  ownsSpecialUseNames: boolean;
  optional: OptionalMethod[];
  names: NameRules;
}

export interface SaveItem {
  uid?: number;
  guid?: string;
  flags: SystemFlag[];
  keywords: string[];
  receivedDate: number;
  copyOf?: number;
  /** The body stream's id. */
  stream: number;
}

/**
 * A full listing (getMessages without `since`) as it travels once both sides name the
 * {@link FEATURE_LISTING_DELTA} feature: each listing gets an id; a client that holds an earlier
 * listing of the mailbox names it as `base`, and the reply may then carry only what differs from
 * it: `messages` the records that are new or changed, `removed` the UIDs no longer there, and
 * `expunged` the records after the first `keptExpunged` of the base's. The engine lists each
 * mailbox before and after it changes it, and the second listing was the whole mailbox again.
 */
export interface ListingReply extends MailboxChanges {
  /** This listing's id, when the server keeps it as a base for the next one. */
  listing?: number;
  /** The listing this reply is relative to. */
  base?: number;
  removed?: number[];
  keptExpunged?: number;
}

export const FEATURE_LISTING_DELTA = 'listing-delta';

const name = (o: Obj, path: string, key = 'name') => mailboxName(o[key], `${path}.${key}`);
const uidList = uid;

const optionalMethod: Check<OptionalMethod> = (v, path) => {
  if (typeof v !== 'string' || !(OPTIONAL_METHODS as readonly string[]).includes(v)) fail(path, OPTIONAL_METHODS.join(', '), v);
  return v as OptionalMethod;
};

export const saveItem: Check<SaveItem> = (v, path) => {
  const o = object(v, path);
  return {
    uid: optional(uid)(o.uid, `${path}.uid`),
    guid: optional(messageGuid)(o.guid, `${path}.guid`),
    flags: flags(o.flags, `${path}.flags`),
    keywords: keywords(o.keywords, `${path}.keywords`),
    receivedDate: clockMs(o.receivedDate, `${path}.receivedDate`),
    copyOf: optional(uid)(o.copyOf, `${path}.copyOf`),
    stream: uint32(o.stream, `${path}.stream`),
  };
};

export function encodeSaveItem(i: SaveItem): Obj {
  return { uid: i.uid, guid: i.guid, flags: flagBits(i.flags), keywords: i.keywords, receivedDate: i.receivedDate, copyOf: i.copyOf, stream: i.stream };
}

type NameArg = { name: readonly string[] };
const nameOnly = spec<NameArg>((o, p) => ({ name: name(o, p) }), (v) => ({ name: v.name }));

export interface OpTypes {
  open: [OpenRequest, StoreInfo];
  listMailboxes: [Record<string, never>, MailboxList];
  mailboxStatus: [NameArg, { status?: MailboxStatus }];
  getMessages: [NameArg & { since?: number; base?: number }, ListingReply];
  openMessage: [NameArg & { uid: number; credit: number }, Record<string, never>];
  messageHashes: [NameArg & { uids: number[] }, { hashes: [number, string][] }];
  adoptGuids: [NameArg & { guids: { uid: number; guid: string }[] }, Record<string, never>];
  saveMessages: [NameArg, { saved: SavedMessage[]; listed?: boolean }];
  updateFlags: [NameArg & { updates: FlagUpdate[] }, Record<string, never>];
  expunge: [NameArg & { uids: number[] }, Record<string, never>];
  createMailbox: [NameArg & { guid?: string; uidValidity?: number; specialUse?: string[] }, { status: MailboxStatus }];
  renameMailbox: [{ from: readonly string[]; to: readonly string[] }, Record<string, never>];
  deleteMailbox: [NameArg, Record<string, never>];
  updateMailbox: [NameArg & MailboxUpdate, { status: MailboxStatus }];
  setSubscribed: [NameArg & { subscribed: boolean }, Record<string, never>];
  getPairState: [{ peer: string }, { state: [string, PairMailboxState][] }];
  setPairState: [{ peer: string; state: [string, PairMailboxState][] }, Record<string, never>];
  getSyncedFlags: [{ peer: string; mailbox: string; guids: string[] }, { entries: ({ guid: string } & SyncedFlags)[] }];
  setSyncedFlags: [{ peer: string; mailbox: string; replaceAll: boolean; entries: ({ guid: string } & SyncedFlags)[] }, Record<string, never>];
  flagChangeTimes: [NameArg & { uids: number[] }, { times: [number, number][] }];
  getMessagesOf: [NameArg & { uids: number[]; guids: string[] }, MessagesOf];
}

export type OpName = keyof OpTypes;
export type OpRequest<K extends OpName> = OpTypes[K][0];
export type OpReply<K extends OpName> = OpTypes[K][1];

export const OPS: { [K in OpName]: { request: WireSpec<OpRequest<K>>; reply: WireSpec<OpReply<K>> } } = {
  open: {
    request: spec(
      (o, p) => ({
        create: bool(o.create, `${p}.create`),
        force: bool(o.force, `${p}.force`),
        lockSeconds: int(0, 86400 * 7)(o.lockSeconds, `${p}.lockSeconds`),
        runLock: bool(o.runLock, `${p}.runLock`),
      }),
      (v) => ({ ...v }),
    ),
    reply: spec(
      (o, p) => ({
        location: str(4096)(o.location, `${p}.location`),
        storeId: peerKey(o.storeId, `${p}.storeId`),
        separator: str(1, /^[^\u0000-\u001f]$/, 'one character')(o.separator, `${p}.separator`),
        nativeGuids: bool(o.nativeGuids, `${p}.nativeGuids`),
        assignsOwnUids: bool(o.assignsOwnUids, `${p}.assignsOwnUids`),
        ownsSpecialUseNames: bool(o.ownsSpecialUseNames, `${p}.ownsSpecialUseNames`),
        // A newer server may have methods this client does not know: those are left out.
        optional: arrayOf((v, q) => (typeof v === 'string' && (OPTIONAL_METHODS as readonly string[]).includes(v) ? optionalMethod(v, q) : undefined), 64)(o.optional, `${p}.optional`).filter(
          (m): m is OptionalMethod => m !== undefined,
        ),
        names: nameRules(o.names, `${p}.names`),
      }),
      (v) => ({ ...v }),
    ),
  },
  listMailboxes: {
    request: empty,
    reply: spec(
      (o, p) => ({
        separator: str(1, /^[^\u0000-\u001f]$/, 'one character')(o.separator, `${p}.separator`),
        mailboxes: o.mailboxes as MailboxStatus[],
        changes: o.changes as MailboxList['changes'],
      }),
      (v) => ({ separator: v.separator, mailboxes: v.mailboxes.map(rec.encodeStatus), changes: v.changes.map(rec.encodeListChange) }),
      { mailboxes: rec.status, changes: rec.listChange },
    ),
  },
  mailboxStatus: {
    request: nameOnly,
    reply: spec(
      (o, p) => (o.status === undefined || o.status === null ? {} : { status: rec.status(o.status, `${p}.status`) }),
      (v) => (v.status ? { status: rec.encodeStatus(v.status) } : {}),
    ),
  },
  getMessages: {
    request: spec(
      (o, p) => ({ name: name(o, p), since: optional(count)(o.since, `${p}.since`), base: optional(uint32)(o.base, `${p}.base`) }),
      (v) => ({ name: v.name, since: v.since, base: v.base }),
    ),
    reply: spec(
      (o, p) => {
        const present = (k: string) => o[k] !== undefined && o[k] !== null;
        return {
          uidValidity: uid(o.uidValidity, `${p}.uidValidity`),
          uidNext: uidNext(o.uidNext, `${p}.uidNext`),
          highestModseq: count(o.highestModseq, `${p}.highestModseq`),
          incremental: bool(o.incremental, `${p}.incremental`),
          ...(present('skipped') ? { skipped: count(o.skipped, `${p}.skipped`) } : {}),
          messages: o.messages as MessageMeta[],
          expunged: o.expunged as ExpungedMessage[],
          ...(present('listing') ? { listing: uint32(o.listing, `${p}.listing`) } : {}),
          ...(present('base')
            ? { base: uint32(o.base, `${p}.base`), removed: o.removed as number[], keptExpunged: count(o.keptExpunged ?? 0, `${p}.keptExpunged`) }
            : {}),
        };
      },
      (v) => ({
        uidValidity: v.uidValidity,
        uidNext: v.uidNext,
        highestModseq: v.highestModseq,
        incremental: v.incremental,
        skipped: v.skipped,
        messages: v.messages.map(rec.encodeMeta),
        expunged: v.expunged.map(rec.encodeExpunged),
        listing: v.listing,
        base: v.base,
        removed: v.removed,
        keptExpunged: v.keptExpunged,
      }),
      { messages: rec.meta, expunged: rec.expunged, removed: uidList },
    ),
  },
  openMessage: {
    request: spec(
      (o, p) => ({ name: name(o, p), uid: uid(o.uid, `${p}.uid`), credit: uint32(o.credit, `${p}.credit`) }),
      (v) => ({ ...v }),
    ),
    reply: empty,
  },
  messageHashes: {
    request: spec((o, p) => ({ name: name(o, p), uids: o.uids as number[] }), (v) => ({ name: v.name, uids: v.uids }), { uids: uidList }),
    reply: spec((o) => ({ hashes: o.hashes as [number, string][] }), (v) => ({ hashes: v.hashes }), { hashes: rec.uidPair(rec.headerHash) }),
  },
  adoptGuids: {
    request: spec(
      (o, p) => ({ name: name(o, p), guids: (o.guids as [number, string][]).map(([u, g]) => ({ uid: u, guid: g })) }),
      (v) => ({ name: v.name, guids: v.guids.map((g) => [g.uid, g.guid]) }),
      { guids: rec.uidPair(messageGuid) },
    ),
    reply: empty,
  },
  saveMessages: {
    request: nameOnly,
    // listed: the server took the saved messages into its last listing of the mailbox (see listing-delta.ts).
    reply: spec(
      (o, p) => ({ saved: o.saved as SavedMessage[], ...(o.listed === true ? { listed: bool(o.listed, `${p}.listed`) } : {}) }),
      (v) => ({ saved: v.saved.map(rec.encodeSaved), listed: v.listed }),
      { saved: rec.saved },
    ),
  },
  updateFlags: {
    request: spec(
      (o, p) => ({ name: name(o, p), updates: o.updates as FlagUpdate[] }),
      (v) => ({ name: v.name, updates: v.updates.map(rec.encodeFlagUpdate) }),
      { updates: rec.flagUpdate },
    ),
    reply: empty,
  },
  expunge: {
    request: spec((o, p) => ({ name: name(o, p), uids: o.uids as number[] }), (v) => ({ name: v.name, uids: v.uids }), { uids: uidList }),
    reply: empty,
  },
  createMailbox: {
    request: spec(
      (o, p) => ({
        name: name(o, p),
        guid: optional(mailboxGuid)(o.guid, `${p}.guid`),
        uidValidity: optional(uid)(o.uidValidity, `${p}.uidValidity`),
        specialUse: optional(specialUse)(o.specialUse, `${p}.specialUse`),
      }),
      (v) => ({ ...v }),
    ),
    reply: spec((o, p) => ({ status: rec.status(o.status, `${p}.status`) }), (v) => ({ status: rec.encodeStatus(v.status) })),
  },
  renameMailbox: {
    request: spec((o, p) => ({ from: name(o, p, 'from'), to: name(o, p, 'to') }), (v) => ({ ...v })),
    reply: empty,
  },
  deleteMailbox: { request: nameOnly, reply: empty },
  updateMailbox: {
    request: spec(
      (o, p) => ({
        name: name(o, p),
        uidValidity: optional(uid)(o.uidValidity, `${p}.uidValidity`),
        minUidNext: optional(uidNext)(o.minUidNext, `${p}.minUidNext`),
        guid: optional(mailboxGuid)(o.guid, `${p}.guid`),
        restartUids: optional(bool)(o.restartUids, `${p}.restartUids`),
      }),
      (v) => ({ ...v }),
    ),
    reply: spec((o, p) => ({ status: rec.status(o.status, `${p}.status`) }), (v) => ({ status: rec.encodeStatus(v.status) })),
  },
  setSubscribed: {
    request: spec((o, p) => ({ name: name(o, p), subscribed: bool(o.subscribed, `${p}.subscribed`) }), (v) => ({ ...v })),
    reply: empty,
  },
  getPairState: {
    request: spec((o, p) => ({ peer: peerKey(o.peer, `${p}.peer`) }), (v) => ({ ...v })),
    reply: spec(
      (o, p) => ({ state: rec.withProofs(o.state as [string, PairMailboxState][], o.proven, `${p}.proven`) }),
      (v) => ({ state: v.state.map(rec.encodePairEntry), ...rec.encodeProofs(v.state) }),
      { state: rec.pairEntry },
    ),
  },
  setPairState: {
    request: spec(
      (o, p) => ({ peer: peerKey(o.peer, `${p}.peer`), state: rec.withProofs(o.state as [string, PairMailboxState][], o.proven, `${p}.proven`) }),
      (v) => ({ peer: v.peer, state: v.state.map(rec.encodePairEntry), ...rec.encodeProofs(v.state) }),
      { state: rec.pairEntry },
    ),
    reply: empty,
  },
  getSyncedFlags: {
    request: spec(
      (o, p) => ({ peer: peerKey(o.peer, `${p}.peer`), mailbox: mailboxGuid(o.mailbox, `${p}.mailbox`), guids: o.guids as string[] }),
      (v) => ({ ...v }),
      { guids: messageGuid },
    ),
    reply: spec((o) => ({ entries: o.entries as ({ guid: string } & SyncedFlags)[] }), (v) => ({ entries: v.entries.map(rec.encodeSyncedEntry) }), { entries: rec.syncedEntry }),
  },
  setSyncedFlags: {
    request: spec(
      (o, p) => ({
        peer: peerKey(o.peer, `${p}.peer`),
        mailbox: mailboxGuid(o.mailbox, `${p}.mailbox`),
        replaceAll: bool(o.replaceAll, `${p}.replaceAll`),
        entries: o.entries as ({ guid: string } & SyncedFlags)[],
      }),
      (v) => ({ peer: v.peer, mailbox: v.mailbox, replaceAll: v.replaceAll, entries: v.entries.map(rec.encodeSyncedEntry) }),
      { entries: rec.syncedEntry },
    ),
    reply: empty,
  },
  flagChangeTimes: {
    request: spec((o, p) => ({ name: name(o, p), uids: o.uids as number[] }), (v) => ({ name: v.name, uids: v.uids }), { uids: uidList }),
    reply: spec((o) => ({ times: o.times as [number, number][] }), (v) => ({ times: v.times }), { times: rec.uidPair(clockMs) }),
  },
  getMessagesOf: {
    request: spec(
      (o, p) => ({ name: name(o, p), uids: o.uids as number[], guids: o.guids as string[] }),
      (v) => ({ name: v.name, uids: v.uids, guids: v.guids }),
      { uids: uidList, guids: messageGuid },
    ),
    reply: spec(
      (o, p) => ({
        uidValidity: uid(o.uidValidity, `${p}.uidValidity`),
        uidNext: uidNext(o.uidNext, `${p}.uidNext`),
        highestModseq: count(o.highestModseq, `${p}.highestModseq`),
        messages: o.messages as MessageMeta[],
      }),
      (v) => ({ uidValidity: v.uidValidity, uidNext: v.uidNext, highestModseq: v.highestModseq, messages: v.messages.map(rec.encodeMeta) }),
      { messages: rec.meta },
    ),
  },
};

export function isOpName(v: unknown): v is OpName {
  return typeof v === 'string' && Object.hasOwn(OPS, v);
}
