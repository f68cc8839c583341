/**
 * A MailStore on the far side of a connection: every call of the store contract becomes a
 * request, answered by id, so calls made together travel together. Bodies stream both ways
 * under credit (body-streams.ts). Whatever the server sends is checked field by field before
 * the engine sees it (wire-ops.ts); errors keep their kind and get the peer's name in front.
 */
import type { Duplex, Readable } from 'node:stream';
import { MailferryError, tempError } from '../model/errors.js';
import { canonicalName } from '../model/mailbox-name.js';
import {
  mailboxKey,
  type CreateMailboxOptions,
  type FlagUpdate,
  type MailboxChanges,
  type MailboxList,
  type MailboxName,
  type MailboxStatus,
  type MailboxUpdate,
  type MailStore,
  type MessageMeta,
  type PairState,
  type SavedMessage,
  type SaveRequest,
  type SyncedFlags,
} from '../storage/store.js';
import { BODY_WINDOW, IncomingBody, OutgoingBody } from './body-streams.js';
import { FrameType, MAX_ID, readU32Payload, type Frame } from './frame-codec.js';
import { nameProblemOf, type NameProblem, type NameRules } from './name-rules.js';
import { ProtocolError } from './protocol-error.js';
import { EAGER_BODY_CREDIT } from './store-server.js';
import { WireConnection } from './wire-connection.js';
import { decodeError, encodeError } from './wire-errors.js';
import { encodeMessage, MessageAssembler, parseObject } from './wire-message.js';
import { ListingCache, savedRecord } from './listing-delta.js';
import { encodeSaveItem, FEATURE_LISTING_DELTA, OPS, type OpenRequest, type OpName, type OpReply, type OpRequest, type StoreInfo, type WireSpec } from './wire-ops.js';

export interface RemoteStoreOptions {
  /** Names the peer in errors: `remote nas`. */
  label: string;
  /** The location as the user wrote it (`remote:nas`). */
  location: string;
  open: OpenRequest;
  /** Offer deflate (used when the server offers it too). */
  compress: boolean;
  /** Milliseconds the server may stay silent while we wait for it (-T); 0 for never. */
  timeoutMs: number;
  rawlog?: (line: string) => void;
  /** Runs after the connection closed (the transport waits for its command here). */
  onClosed?: (err: Error | undefined) => Promise<void>;
  /** Called once the peer's hello has arrived: a failure after it is not the command's start. */
  onHandshake?: () => void;
  /** Why the connection may have gone, for the error that reports it (`the command exited with status 255`). */
  closeReason?: () => string | undefined;
}

/** Save bodies being sent at once, at most: a store pulls up to 200 + 16 before it reads one. */
const MAX_SENDING_BODIES = 256;

/** Bodies opened ahead of the engine's asks, along a mailbox's listing. */
const OPEN_AHEAD = 16;

/** A body opened ahead that nobody will read: cancelled once it is open. */
function discard(p: Promise<Readable>): void {
  p.then((b) => b.destroy(), () => {});
}

/** Position of `uid` in an ascending list, or -1. */
function indexOf(list: readonly number[], uid: number): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] === uid) return mid;
    if (list[mid]! < uid) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Bodies opened but not yet read that may hold eager credit: 32 x 64 KiB at most. */
const EAGER_OPEN_BODIES = 32;
/** How long close() waits for the server to finish (close its store) after we end our side. */
const CLOSE_WAIT_MS = 60_000;

interface Pending {
  op: OpName;
  asm: MessageAssembler;
  /** Runs on the decoded reply as its frame arrives, in the order replies come (see call). */
  then?: (value: unknown) => unknown;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** A save in progress: the engine's requests, sent as the server pulls them. */
class ClientSave {
  private wanted = 0;
  private pumping = false;
  private done = false;
  localError: unknown;
  private readonly iterator: AsyncIterator<SaveRequest>;
  /** What was sent of each message, in order: the saved messages' records (see records). */
  private readonly sent: { flags: SaveRequest['flags']; keywords: SaveRequest['keywords']; receivedDate: number; copy: boolean; stream: number }[] = [];

  constructor(
    private readonly client: RemoteStore,
    readonly id: number,
    messages: Iterable<SaveRequest> | AsyncIterable<SaveRequest>,
  ) {
    this.iterator =
      Symbol.asyncIterator in messages
        ? (messages as AsyncIterable<SaveRequest>)[Symbol.asyncIterator]()
        : (async function* () {
            yield* messages as Iterable<SaveRequest>;
          })();
  }

  pull(n: number): void {
    this.wanted += n;
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.wanted > 0 && !this.done) {
        // However much a server asks for, no more bodies are opened and sent at once than a
        // store legitimately waits on (an mbox takes 200 before it writes).
        await this.client.bodySlot();
        if (this.done) return;
        let next: IteratorResult<SaveRequest>;
        try {
          next = await this.client.locally(() => this.iterator.next());
        } catch (err) {
          this.fail(err);
          return;
        }
        if (this.done) return;
        if (next.done) {
          this.done = true;
          this.client.sendFrame(FrameType.ItemsEnd, this.id);
          return;
        }
        this.wanted--;
        const req = next.value;
        const stream = this.client.sendItem(this.id, req, (err) => this.fail(err));
        this.sent.push({ flags: req.flags, keywords: req.keywords, receivedDate: req.receivedDate, copy: req.copyOf !== undefined, stream });
      }
    } finally {
      this.pumping = false;
    }
  }

  private fail(err: unknown): void {
    if (this.done) return;
    this.done = true;
    this.localError = err;
    this.client.sendFrame(FrameType.Error, this.id, encodeError(err));
  }

  /** The saved messages' records as the server built them too (savedRecord), when every body went out whole. */
  records(saved: readonly SavedMessage[], sizeOf: (stream: number) => number | undefined): MessageMeta[] | undefined {
    if (saved.length !== this.sent.length) return undefined;
    const out: MessageMeta[] = [];
    try {
      for (let i = 0; i < saved.length; i++) {
        const s = this.sent[i]!;
        const size = sizeOf(s.stream);
        if (s.copy || size === undefined) return undefined;
        out.push(savedRecord(saved[i]!, { flags: s.flags, keywords: s.keywords, receivedDate: s.receivedDate, size }));
      }
    } catch {
      return undefined;
    }
    return out;
  }

  /** The body streams of this save. */
  streams(): number[] {
    return this.sent.map((s) => s.stream);
  }

  finish(): void {
    if (!this.done) {
      this.done = true;
      // The store stopped pulling (it failed): leave the engine's generator where it is.
      void this.iterator.return?.()?.catch(() => {});
    }
  }
}

export class RemoteStore implements MailStore {
  readonly location: string;
  readonly storeId: string;
  readonly separator: string;
  readonly nativeGuids: boolean;
  readonly assignsOwnUids: boolean;
  readonly ownsSpecialUseNames: boolean;
  /** The server's name rules, passed on when this store is itself served. */
  readonly nameRules: NameRules;
  readonly mailboxNameProblem?: NameProblem;
  readonly adoptGuids?: MailStore['adoptGuids'];
  readonly getSyncedFlags?: MailStore['getSyncedFlags'];
  readonly setSyncedFlags?: MailStore['setSyncedFlags'];
  readonly flagChangeTimes?: MailStore['flagChangeTimes'];
  readonly getMessagesOf?: MailStore['getMessagesOf'];
  /** What the server said it is, for -D output. */
  readonly serverLocation: string;
  /** UIDs of each mailbox's last listing, and the bodies opened ahead along it. */
  private readonly listed = new Map<string, number[]>();
  private readonly ahead = new Map<{ box: string; uid: number }, Promise<Readable>>();
  private lastOpened?: { box: string; uid: number };
  private streak = 0;
  /** The server sends a mailbox's listing as its difference from the last one (see listing-delta.ts). */
  private readonly listingDelta: boolean;
  private readonly listings = new ListingCache();
  private prefetched?: { listing: Promise<MailboxList>; after: number };

  private constructor(
    private readonly conn: WireConnection,
    private readonly state: ClientState,
    info: StoreInfo,
    private readonly options: RemoteStoreOptions,
  ) {
    this.location = options.location;
    this.serverLocation = info.location;
    this.storeId = info.storeId;
    this.separator = info.separator;
    this.nativeGuids = info.nativeGuids;
    this.assignsOwnUids = info.assignsOwnUids;
    this.ownsSpecialUseNames = info.ownsSpecialUseNames;
    this.nameRules = info.names;
    this.mailboxNameProblem = nameProblemOf(info.names);
    this.listingDelta = conn.peer.features.includes(FEATURE_LISTING_DELTA);
    const has = new Set(info.optional);
    if (has.has('adoptGuids')) {
      this.adoptGuids = async (name, guids) => void (await this.call('adoptGuids', { name, guids: [...guids] }));
    }
    if (has.has('getSyncedFlags')) {
      this.getSyncedFlags = async (peer, mailbox, guids) => {
        const { entries } = await this.call('getSyncedFlags', { peer, mailbox, guids: [...guids] });
        return new Map<string, SyncedFlags>(entries.map((e) => [e.guid, { flags: e.flags, keywords: e.keywords }]));
      };
    }
    if (has.has('setSyncedFlags')) {
      this.setSyncedFlags = async (peer, mailbox, entries, replaceAll) =>
        void (await this.call('setSyncedFlags', { peer, mailbox, replaceAll, entries: entries.map((e) => ({ guid: e.guid, flags: [...e.flags], keywords: [...e.keywords] })) }));
    }
    if (has.has('flagChangeTimes')) {
      this.flagChangeTimes = async (name, uids) => new Map((await this.call('flagChangeTimes', { name, uids: [...uids] })).times);
    }
    if (has.has('getMessagesOf')) {
      this.getMessagesOf = (name, which) => this.call('getMessagesOf', { name, uids: [...which.uids], guids: [...which.guids] });
    }
  }

  /** Handshake, then opens the store on the far side. */
  static async connect(stream: Duplex, options: RemoteStoreOptions): Promise<RemoteStore> {
    const conn = await WireConnection.open(
      stream,
      { label: options.label, compress: options.compress, timeoutMs: options.timeoutMs, rawlog: options.rawlog },
      [FEATURE_LISTING_DELTA],
    );
    options.onHandshake?.();
    const state = new ClientState(conn, options.label, options.closeReason);
    const info = await state.call('open', options.open);
    const store = new RemoteStore(conn, state, info, options);
    store.prefetchList();
    return store;
  }

  /**
   * Every run lists the mailboxes first, and most list their own store before this one: the far
   * side starts listing as soon as it is open, while we do the rest. The result is used only by a
   * listMailboxes that no other request came before.
   */
  private prefetchList(): void {
    const listing = this.state.call('listMailboxes', {});
    listing.catch(() => {});
    this.prefetched = { listing, after: this.state.requestsSent };
  }

  private call<K extends OpName>(op: K, args: OpRequest<K>): Promise<OpReply<K>> {
    return this.state.call(op, args);
  }

  /** Frames and items for ClientSave. */
  sendFrame(type: FrameType, id: number, payload?: Buffer): void {
    this.conn.send(type, id, payload);
  }

  sendItem(saveId: number, req: SaveRequest, onError: (err: unknown) => void): number {
    return this.state.sendItem(saveId, req, onError);
  }

  locally<T>(work: () => Promise<T>): Promise<T> {
    return this.state.locally(work);
  }

  bodySlot(): Promise<void> {
    return this.state.bodySlot();
  }

  async listMailboxes(): Promise<MailboxList> {
    const early = this.prefetched;
    this.prefetched = undefined;
    if (early && early.after === this.state.requestsSent) {
      // A failure is asked again, so that it is this call's own.
      const list = await early.listing.catch(() => undefined);
      if (list) return list;
    }
    return this.call('listMailboxes', {});
  }

  async mailboxStatus(name: MailboxName): Promise<MailboxStatus | undefined> {
    return (await this.call('mailboxStatus', { name })).status;
  }

  async getMessages(name: MailboxName, sinceModseq?: number): Promise<MailboxChanges> {
    const key = mailboxKey(canonicalName(name));
    const base = this.listingDelta && sinceModseq === undefined ? this.listings.baseFor(key) : undefined;
    const asked = { base, whole: this.listingDelta && sinceModseq === undefined };
    const changes = await this.state.call('getMessages', { name, since: sinceModseq, base }, undefined, (reply) => this.listings.take(key, reply, asked));
    this.listed.set(key, changes.messages.map((m) => m.uid));
    return changes;
  }

  /**
   * Bodies are asked for one at a time, each after the last; across a link of some latency that
   * is one round trip per message. Once two asks in a row followed the mailbox's last listing,
   * the next few listed are opened ahead (each with a little credit, so small messages arrive
   * whole), and what the engine then skips is cancelled.
   */
  async openMessage(name: MailboxName, uid: number): Promise<Readable> {
    const box = mailboxKey(canonicalName(name));
    const ahead = this.ahead;
    for (const [key, p] of ahead) {
      if (key.box !== box || key.uid < uid) {
        ahead.delete(key);
        discard(p);
      }
    }
    let found: Promise<Readable> | undefined;
    for (const [key, p] of ahead) {
      if (key.uid === uid) {
        found = p;
        ahead.delete(key);
      }
    }
    const listed = this.listed.get(box) ?? [];
    const at = indexOf(listed, uid);
    const followed = at > 0 && this.lastOpened?.box === box && this.lastOpened.uid === listed[at - 1];
    this.streak = followed ? this.streak + 1 : 0;
    this.lastOpened = { box, uid };
    if (this.streak >= 1 && at >= 0) {
      const have = new Set([...ahead.keys()].map((k) => k.uid));
      for (const next of listed.slice(at + 1, at + 1 + OPEN_AHEAD)) {
        if (have.has(next)) continue;
        const p = this.state.openBody(name, next);
        p.catch(() => {});
        ahead.set({ box, uid: next }, p);
      }
    }
    return found ?? this.state.openBody(name, uid);
  }

  async messageHashes(name: MailboxName, uids: readonly number[]): Promise<Map<number, string>> {
    return new Map((await this.call('messageHashes', { name, uids: [...uids] })).hashes);
  }

  async saveMessages(name: MailboxName, messages: Iterable<SaveRequest> | AsyncIterable<SaveRequest>): Promise<SavedMessage[]> {
    const id = this.state.nextId();
    const save = new ClientSave(this, id, messages);
    this.state.saves.set(id, save);
    const key = mailboxKey(canonicalName(name));
    try {
      const { saved } = await this.state.call('saveMessages', { name }, id, (reply) => {
        // In the order of the replies, as the server did it: the saved messages join the last listing, or not, as there.
        this.listings.saved(key, reply.listed === true, reply.listed ? save.records(reply.saved, (s) => this.state.bodyBytes.get(s)) : undefined);
        return reply;
      });
      if (save.localError !== undefined) throw save.localError;
      return saved;
    } catch (err) {
      throw save.localError ?? this.state.localBodyError(id) ?? err;
    } finally {
      this.state.saves.delete(id);
      save.finish();
      for (const s of save.streams()) this.state.bodyBytes.delete(s);
      this.state.endSave(id);
    }
  }

  async updateFlags(name: MailboxName, updates: readonly FlagUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    await this.call('updateFlags', { name, updates: [...updates] });
  }

  async expunge(name: MailboxName, uids: readonly number[]): Promise<void> {
    if (uids.length === 0) return;
    await this.call('expunge', { name, uids: [...uids] });
  }

  async createMailbox(name: MailboxName, options: CreateMailboxOptions = {}): Promise<MailboxStatus> {
    return (await this.call('createMailbox', { name, guid: options.guid, uidValidity: options.uidValidity, specialUse: options.specialUse })).status;
  }

  async renameMailbox(from: MailboxName, to: MailboxName): Promise<void> {
    await this.call('renameMailbox', { from, to });
  }

  async deleteMailbox(name: MailboxName): Promise<void> {
    await this.call('deleteMailbox', { name });
  }

  async updateMailbox(name: MailboxName, update: MailboxUpdate): Promise<MailboxStatus> {
    return (await this.call('updateMailbox', { name, ...update })).status;
  }

  async setSubscribed(name: MailboxName, subscribed: boolean): Promise<void> {
    await this.call('setSubscribed', { name, subscribed });
  }

  async getPairState(peerId: string): Promise<PairState> {
    return Object.fromEntries((await this.call('getPairState', { peer: peerId })).state);
  }

  async setPairState(peerId: string, state: PairState): Promise<void> {
    await this.call('setPairState', { peer: peerId, state: Object.entries(state) });
  }

  /** Ends the connection; the server closes its store (and releases its locks) before it is done. */
  async close(): Promise<void> {
    for (const p of this.ahead.values()) discard(p);
    this.ahead.clear();
    this.listings.clear();
    await this.state.close(CLOSE_WAIT_MS);
    const err = this.state.closeError;
    await this.options.onClosed?.(err);
    // A server that broke off before we were done already failed the call that noticed; a
    // clean end after our last call is the normal case.
    if (err && !(err instanceof MailferryError)) throw err;
  }
}

/** The connection as the client sees it: pending requests, streams, saves. */
class ClientState {
  private lastId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly incoming = new Map<number, IncomingBody>();
  private readonly outgoing = new Map<number, OutgoingBody>();
  /** Save bodies the server has not asked for yet (the store may link instead of reading). */
  private readonly deferred = new Map<number, { saveId: number; body: SaveRequest['body']; onError: (err: unknown) => void }>();
  private readonly bodyErrors = new Map<number, unknown>();
  /** Save bodies sent whole, by stream: their byte counts, until their save ends. */
  readonly bodyBytes = new Map<number, number>();
  readonly saves = new Map<number, ClientSave>();
  private localWork = 0;
  private readonly slotWaiters: (() => void)[] = [];
  closeError: Error | undefined;
  private closed = false;
  private readonly closedPromise: Promise<void>;

  constructor(
    private readonly conn: WireConnection,
    private readonly label: string,
    closeReason: () => string | undefined = () => undefined,
  ) {
    let resolveClosed!: () => void;
    this.closedPromise = new Promise((r) => (resolveClosed = r));
    conn.waiting = () => this.localWork === 0 && (this.pending.size > 0 || [...this.incoming.values()].some((b) => b.awaitingData));
    conn.onClose = (err) => {
      this.closed = true;
      this.closeError = err;
      const why = closeReason();
      const gone = err ?? tempError(`${label}: the connection closed before the reply${why ? ` (${why})` : ''}`);
      for (const p of this.pending.values()) p.reject(gone);
      this.pending.clear();
      for (const b of this.incoming.values()) b.fail(gone);
      for (const o of this.outgoing.values()) o.cancel();
      for (const w of this.slotWaiters.splice(0)) w();
      resolveClosed();
    };
    conn.onFrame = (frame) => this.frame(frame);
    conn.start();
  }

  nextId(): number {
    if (this.lastId >= MAX_ID) throw tempError(`${this.label}: ran out of request ids; run again`);
    return ++this.lastId;
  }

  async locally<T>(work: () => Promise<T>): Promise<T> {
    this.localWork++;
    try {
      return await work();
    } finally {
      this.localWork--;
      this.conn.touch();
    }
  }

  /** Requests sent so far. */
  requestsSent = 0;

  /**
   * `then` runs on the reply when its frame arrives, before any later frame: state kept along
   * the replies (a mailbox's last listing) follows them in the order the server sent them,
   * whatever order the callers' continuations run in. A throw there fails the connection.
   */
  call<K extends OpName>(op: K, args: OpRequest<K>, id = this.nextId(), then?: (reply: OpReply<K>) => OpReply<K>): Promise<OpReply<K>> {
    this.requestsSent++;
    if (this.closed) return Promise.reject(this.closeError ?? tempError(`${this.label}: the connection is closed`));
    const spec = OPS[op];
    const { parts, final } = encodeMessage(spec.request as WireSpec<OpRequest<K>>, args, { op });
    return new Promise<OpReply<K>>((resolve, reject) => {
      this.pending.set(id, { op, asm: new MessageAssembler(spec.reply.chunked, `reply to ${op}`), then: then as Pending['then'], resolve: resolve as (v: unknown) => void, reject });
      for (const p of parts) this.conn.send(FrameType.Part, id, p);
      this.conn.send(FrameType.Request, id, final);
    });
  }

  async openBody(name: MailboxName, uid: number): Promise<Readable> {
    const id = this.nextId();
    const unread = [...this.incoming.values()].filter((b) => b.readableLength > 0 || b.awaitingData).length;
    const credit = unread < EAGER_OPEN_BODIES ? BODY_WINDOW / 4 : 0;
    const body = new IncomingBody(this.conn, id, credit, `message ${name.join('/')} UID ${uid}`, () => this.incoming.delete(id));
    this.incoming.set(id, body);
    try {
      await this.call('openMessage', { name, uid, credit }, id);
    } catch (err) {
      body.forget();
      throw err;
    }
    return body;
  }

  sendItem(saveId: number, req: SaveRequest, onError: (err: unknown) => void): number {
    const stream = this.nextId();
    const item = { uid: req.uid, guid: req.guid, flags: req.flags, keywords: req.keywords, receivedDate: req.receivedDate, copyOf: req.copyOf, stream };
    this.conn.send(FrameType.Item, saveId, Buffer.from(JSON.stringify(encodeSaveItem(item))));
    const entry = { saveId, body: req.body, onError };
    if (req.copyOf === undefined) this.startBody(stream, entry, EAGER_BODY_CREDIT);
    else this.deferred.set(stream, entry);
    return stream;
  }

  private startBody(stream: number, entry: { saveId: number; body: SaveRequest['body']; onError: (err: unknown) => void }, credit: number): void {
    const failed = (err: unknown) => {
      this.bodyErrors.set(entry.saveId, err);
      entry.onError(err);
    };
    void (async () => {
      let source: Readable;
      try {
        source = await entry.body();
      } catch (err) {
        failed(err);
        this.conn.send(FrameType.Error, stream, encodeError(err));
        return;
      }
      const out = new OutgoingBody(this.conn, stream, source, credit, failed);
      this.outgoing.set(stream, out);
      await out.run();
      if (out.sentBytes !== undefined) this.bodyBytes.set(stream, out.sentBytes);
      this.outgoing.delete(stream);
      this.slotWaiters.shift()?.();
    })();
  }

  /** Resolves when fewer than MAX_SENDING_BODIES save bodies are being sent. */
  bodySlot(): Promise<void> {
    if (this.outgoing.size < MAX_SENDING_BODIES || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  localBodyError(saveId: number): unknown {
    return this.bodyErrors.get(saveId);
  }

  endSave(saveId: number): void {
    this.bodyErrors.delete(saveId);
    for (const [stream, d] of this.deferred) if (d.saveId === saveId) this.deferred.delete(stream);
  }

  private staleOrUnknown(frame: Frame): void {
    if (frame.id === 0 || frame.id > this.lastId) throw new ProtocolError(`${FrameType[frame.type]} frame for id ${frame.id}, which was never used`);
  }

  private frame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.Reply: {
        const p = this.pending.get(frame.id);
        if (!p) return this.staleOrUnknown(frame);
        // A reply that does not decode fails the connection, and this request with it.
        const decoded = p.asm.finish(OPS[p.op].reply as WireSpec<unknown>, parseObject(frame.payload, `reply to ${p.op}`));
        const value = p.then ? p.then(decoded) : decoded;
        this.pending.delete(frame.id);
        p.resolve(value);
        return;
      }
      case FrameType.Part: {
        const p = this.pending.get(frame.id);
        if (!p) return this.staleOrUnknown(frame);
        p.asm.addPart(parseObject(frame.payload, `part of the reply to ${p.op}`));
        return;
      }
      case FrameType.Error: {
        const p = this.pending.get(frame.id);
        if (p) {
          // Decoded first: an error frame that is itself broken fails the connection, and with
          // it this request, which is still pending then.
          const err = decodeError(frame.payload, this.label, `reply to ${p.op}`);
          this.pending.delete(frame.id);
          if (p.op === 'openMessage') this.incoming.get(frame.id)?.forget();
          p.reject(err);
          return;
        }
        const body = this.incoming.get(frame.id);
        if (body) return body.fail(decodeError(frame.payload, this.label, `message body ${frame.id}`));
        return this.staleOrUnknown(frame);
      }
      case FrameType.Data: {
        const body = this.incoming.get(frame.id);
        if (body) return body.data(frame.payload);
        return this.staleOrUnknown(frame);
      }
      case FrameType.End: {
        const body = this.incoming.get(frame.id);
        if (body) return body.finish(frame.payload);
        return this.staleOrUnknown(frame);
      }
      case FrameType.Credit: {
        const n = readU32Payload(frame);
        const out = this.outgoing.get(frame.id);
        if (out) return out.addCredit(n);
        const d = this.deferred.get(frame.id);
        if (d) {
          this.deferred.delete(frame.id);
          this.startBody(frame.id, d, n);
          return;
        }
        return this.staleOrUnknown(frame);
      }
      case FrameType.Cancel: {
        this.outgoing.get(frame.id)?.cancel();
        this.deferred.delete(frame.id);
        return this.staleOrUnknown(frame);
      }
      case FrameType.Pull: {
        const n = readU32Payload(frame);
        const save = this.saves.get(frame.id);
        if (!save) return this.staleOrUnknown(frame);
        save.pull(n);
        return;
      }
      default:
        throw new ProtocolError(`a ${FrameType[frame.type]} frame, which only a client sends`);
    }
  }

  async close(waitMs: number): Promise<void> {
    if (this.closed) return;
    await this.conn.end();
    // The server closes its store, then its side: wait for that, but not forever.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closedPromise, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    if (!this.closed) this.conn.fail(tempError(`${this.label}: the server did not finish within ${waitMs / 1000} seconds`));
  }
}
