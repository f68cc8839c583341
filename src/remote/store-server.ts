/**
 * Serves one local MailStore to a peer over a byte stream: the far end of a `remote:`
 * location (`mailferry dsync-server`), or an in-process pipe in tests. Requests run as they
 * arrive, several at once as the client sends them (a save on this store reads bodies the
 * client may be opening on this same store). Everything the client sends is checked before
 * it reaches the store; a protocol error closes the connection, and the store, whose writes
 * are all crash-safe, is closed as after an interrupted local run.
 */
import type { Duplex, Readable } from 'node:stream';
import { MailferryError, usageError } from '../model/errors.js';
import { canonicalName } from '../model/mailbox-name.js';
import { mailboxKey, type MailStore, type MessageMeta, type SavedMessage, type SaveRequest } from '../storage/store.js';
import { IncomingBody, OutgoingBody } from './body-streams.js';
import { FrameType, readU32Payload, u32Payload, type Frame } from './frame-codec.js';
import { nameRulesOf } from './name-rules.js';
import { ProtocolError } from './protocol-error.js';
import { WireConnection } from './wire-connection.js';
import { decodeError, encodeError } from './wire-errors.js';
import { encodeMessage, MAX_ITEMS, MessageAssembler, parseObject } from './wire-message.js';
import { ListingMemory, savedRecord } from './listing-delta.js';
import { FEATURE_LISTING_DELTA, isOpName, OPS, OPTIONAL_METHODS, saveItem, type OpenRequest, type OpName, type OpReply, type OpRequest, type SaveItem, type WireSpec } from './wire-ops.js';

export interface OpenedForPeer {
  store: MailStore;
  /** The location string the store was opened from (for its name rules and for messages). */
  location: string;
  /** Releases what opening took besides the store (the run lock). */
  release?: () => void;
}

export interface ServeOptions {
  /** Names the client in log lines and errors. */
  label: string;
  /** Opens the served store as the client asks (create, force, lock wait, run lock). */
  open(request: OpenRequest): Promise<OpenedForPeer>;
  compress: boolean;
  rawlog?: (line: string) => void;
  /** The largest frame payload taken from the client (server_max_frame_size). */
  maxFramePayload?: number;
}

/** Requests one client may have in flight; more is a client gone wrong. */
export const MAX_IN_FLIGHT = 1024;
/** Bytes of flags and keywords a save keeps to join its records to the listing (a peer may send 1 MB of keywords a message). */
const SAVED_RECORDS_BUDGET = 8 * 1024 * 1024;
/** Messages of a save pulled ahead of the store, each with up to {@link EAGER_BODY_CREDIT} of its body. */
export const SAVE_PULL_AHEAD = 64;
/**
 * Pulls go out in steps of this many messages, once that many of those asked for were taken by
 * the store: a Pull per message was a write (and a wakeup of the client) per message on both
 * sides, and the client then sent each message in a write of its own.
 */
export const SAVE_PULL_STEP = SAVE_PULL_AHEAD / 2;
/** Body bytes a client may send with each pulled message before the store asks for it. */
export const EAGER_BODY_CREDIT = 64 * 1024;

/**
 * One save in progress: the store's iterable, fed by the client's Item frames.
 *
 * A client copying messages within the mailbox it saves to (a renumbering) opens them on this
 * same store while the save runs, as the engine does locally from inside the iterable: there
 * the store is between two of its writes, and a store that locks its file for writing (mbox)
 * lets those reads through without the lock. The client pulls ahead of the store, so its opens
 * for the saved mailbox are held here and run when the store next asks for a message, never in
 * the middle of a write, where they would wait for a lock the save keeps until it ends.
 */
class ServerSave {
  private readonly queue: { item: SaveItem; body: IncomingBody }[] = [];
  private ended = false;
  private error: Error | undefined;
  private wake?: () => void;
  private pulling = false;
  /** Messages asked for so far; a client sending more than that is not to be believed. */
  private pulled = 0;
  private received = 0;
  /** Messages handed to the store. */
  private taken = 0;
  private readonly heldOpens: (() => Promise<void>)[] = [];
  readonly bodies = new Map<number, IncomingBody>();
  /**
   * What the client sent of each message the store took, in order, and the byte count of each
   * body that came whole, by stream: the saved messages' records (see savedRecords). Kept only
   * for a client that joins saves to its listings, and only up to SAVED_RECORDS_BUDGET bytes of
   * flags and keywords: past that (undefined) the save's records are not known, and the next
   * listing of the mailbox travels whole.
   */
  private sent: SaveItem[] | undefined;
  private sentBytes = 0;
  private readonly sizes = new Map<number, number>();

  constructor(
    private readonly conn: WireConnection,
    readonly id: number,
    readonly mailbox: string,
    private readonly newBody: (item: SaveItem) => IncomingBody,
    keepRecords: boolean,
  ) {
    if (keepRecords) this.sent = [];
  }

  item(item: SaveItem): void {
    if (this.ended) throw new ProtocolError(`save ${this.id}: a message after the end`);
    if (++this.received > this.pulled) throw new ProtocolError(`save ${this.id}: more messages than were asked for`);
    const body = this.newBody(item);
    this.bodies.set(item.stream, body);
    this.queue.push({ item, body });
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  abort(err: Error): void {
    this.error = err;
    this.ended = true;
    this.wake?.();
  }

  /** Runs `open` now when the store waits for a message, else at its next pull (or the save's end). */
  open(open: () => Promise<void>): void {
    if (this.pulling) void open();
    else {
      this.heldOpens.push(open);
      this.wake?.();
    }
  }

  private async runHeldOpens(): Promise<void> {
    while (this.heldOpens.length > 0) await this.heldOpens.shift()!();
  }

  private pull(n: number): void {
    this.pulled += n;
    this.conn.send(FrameType.Pull, this.id, u32Payload(n));
  }

  async *requests(): AsyncGenerator<SaveRequest> {
    this.pull(SAVE_PULL_AHEAD);
    for (;;) {
      this.pulling = true;
      await this.runHeldOpens();
      while (this.queue.length === 0 && !this.ended && !this.error) {
        await new Promise<void>((r) => (this.wake = r));
        await this.runHeldOpens();
      }
      this.wake = undefined;
      this.pulling = false;
      if (this.error) throw this.error;
      const next = this.queue.shift();
      if (!next) return;
      const { item, body } = next;
      this.taken++;
      if (!this.ended && this.pulled - this.taken <= SAVE_PULL_AHEAD - SAVE_PULL_STEP) this.pull(SAVE_PULL_AHEAD - (this.pulled - this.taken));
      if (this.sent !== undefined) {
        this.sentBytes += 64 + item.flags.length * 16 + item.keywords.reduce((n, k) => n + 16 + k.length, 0);
        if (this.sentBytes > SAVED_RECORDS_BUDGET) this.sent = undefined;
        else this.sent.push(item);
      }
      yield {
        uid: item.uid,
        guid: item.guid,
        flags: item.flags,
        keywords: item.keywords,
        receivedDate: item.receivedDate,
        copyOf: item.copyOf,
        body: () => body,
      };
    }
  }

  /** A body came whole: its byte count, and the save holds it no longer. */
  bodyDone(stream: number, body: IncomingBody): void {
    this.bodies.delete(stream);
    if (body.complete) this.sizes.set(stream, body.bytesReceived);
  }

  /** The records of the saved messages, when each is known whole (not a copy, its body complete). */
  savedRecords(saved: readonly SavedMessage[]): MessageMeta[] | undefined {
    const sent = this.sent;
    if (sent === undefined || saved.length !== sent.length) return undefined;
    const out: MessageMeta[] = [];
    try {
      for (let i = 0; i < saved.length; i++) {
        const item = sent[i]!;
        const size = this.sizes.get(item.stream);
        if (item.copyOf !== undefined || size === undefined) return undefined;
        out.push(savedRecord(saved[i]!, { flags: item.flags, keywords: item.keywords, receivedDate: item.receivedDate, size }));
      }
    } catch {
      return undefined;
    }
    return out;
  }

  /** Bodies the store did not read to the end are cancelled; opens still held run now. */
  finish(): void {
    for (const b of this.bodies.values()) if (!b.destroyed && !b.readableEnded) b.destroy();
    this.bodies.clear();
    this.pulling = true;
    void this.runHeldOpens();
  }
}

/** Serves until the client closes the connection (or breaks the protocol); then closes the store. */
export async function serveStore(stream: Duplex, options: ServeOptions): Promise<void> {
  const conn = await WireConnection.open(
    stream,
    { label: options.label, compress: options.compress, rawlog: options.rawlog, maxFramePayload: options.maxFramePayload },
    [FEATURE_LISTING_DELTA],
  );
  const listingDelta = conn.peer.features.includes(FEATURE_LISTING_DELTA);
  const listings = new ListingMemory();
  let opened: OpenedForPeer | undefined;
  let opening = false;
  let maxId = 0;
  const assemblers = new Map<number, { op: OpName; asm: MessageAssembler }>();
  const inFlight = new Map<number, Promise<void>>();
  const outgoing = new Map<number, OutgoingBody>();
  const incoming = new Map<number, IncomingBody>();
  const saves = new Map<number, ServerSave>();
  let closeError: Error | undefined;

  const closed = new Promise<void>((resolve) => {
    conn.onClose = (err) => {
      closeError = err;
      const gone = err ?? new MailferryError('tempfail', `${options.label}: the connection closed`);
      for (const b of incoming.values()) b.fail(gone);
      for (const o of outgoing.values()) o.cancel();
      for (const s of saves.values()) s.abort(gone);
      resolve();
    };
  });

  function newId(id: number): void {
    if (id === 0) throw new ProtocolError('id 0 is not used');
    if (inFlight.has(id) || incoming.has(id) || outgoing.has(id)) throw new ProtocolError(`id ${id} is already in use`);
    if (id > maxId) maxId = id;
  }

  /** Data for a stream that is over (cancelled, or its save ended) is dropped; for one never named, refused. */
  function staleOrUnknown(frame: Frame): void {
    if (frame.id === 0 || frame.id > maxId) throw new ProtocolError(`${FrameType[frame.type]} frame for stream ${frame.id}, which was never opened`);
  }

  function reply<K extends OpName>(op: K, id: number, value: OpReply<K>): void {
    const { parts, final } = encodeMessage(OPS[op].reply, value);
    for (const p of parts) conn.send(FrameType.Part, id, p);
    conn.send(FrameType.Reply, id, final);
  }

  function store(): MailStore {
    if (!opened) throw usageError('the store is not open yet: the first request must be open');
    return opened.store;
  }

  function need<M extends (typeof OPTIONAL_METHODS)[number]>(m: M): NonNullable<MailStore[M]> {
    const s = store();
    const fn = s[m];
    if (typeof fn !== 'function') throw usageError(`the served store has no ${m}`);
    return (fn as (...a: unknown[]) => unknown).bind(s) as NonNullable<MailStore[M]>;
  }

  async function handle<K extends OpName>(op: K, id: number, a: OpRequest<K>): Promise<OpReply<K>> {
    // Each case narrows `a` by hand: the table ties request and reply types to the op.
    const r = a as never as Record<string, never>;
    switch (op as OpName) {
      case 'open': {
        if (opened || opening) throw usageError('the store is already open');
        opening = true;
        try {
          opened = await options.open(a as OpRequest<'open'>);
        } finally {
          opening = false;
        }
        const s = opened.store;
        const info: OpReply<'open'> = {
          location: opened.location,
          storeId: s.storeId,
          separator: s.separator,
          nativeGuids: s.nativeGuids,
          assignsOwnUids: s.assignsOwnUids === true,
          ownsSpecialUseNames: s.ownsSpecialUseNames === true,
          optional: OPTIONAL_METHODS.filter((m) => typeof s[m] === 'function'),
          names: nameRulesOf(s, opened.location),
        };
        return info as OpReply<K>;
      }
      case 'listMailboxes':
        return (await store().listMailboxes()) as OpReply<K>;
      case 'mailboxStatus': {
        const status = await store().mailboxStatus((a as OpRequest<'mailboxStatus'>).name);
        return (status ? { status } : {}) as OpReply<K>;
      }
      case 'getMessages': {
        const q = a as OpRequest<'getMessages'>;
        const changes = await store().getMessages(q.name, q.since);
        if (!listingDelta || q.since !== undefined) return changes as OpReply<K>;
        return listings.reply(mailboxKey(canonicalName(q.name)), changes, q.base) as OpReply<K>;
      }
      case 'openMessage': {
        const q = a as OpRequest<'openMessage'>;
        const save = [...saves.values()].find((x) => x.mailbox === mailboxKey(canonicalName(q.name)));
        const open = async () => {
          const body: Readable = await store().openMessage(q.name, q.uid);
          reply('openMessage', id, {});
          const out = new OutgoingBody(conn, id, body, q.credit);
          outgoing.set(id, out);
          void out.run().finally(() => outgoing.delete(id));
        };
        if (!save) await open();
        else {
          await new Promise<void>((resolve, reject) => save.open(() => open().then(resolve, reject)));
        }
        return undefined as never;
      }
      case 'messageHashes': {
        const q = a as OpRequest<'messageHashes'>;
        return { hashes: [...(await store().messageHashes(q.name, q.uids))] } as OpReply<K>;
      }
      case 'adoptGuids': {
        const q = a as OpRequest<'adoptGuids'>;
        await need('adoptGuids')(q.name, q.guids);
        return {} as OpReply<K>;
      }
      case 'saveMessages': {
        const q = a as OpRequest<'saveMessages'>;
        const save = new ServerSave(conn, id, mailboxKey(canonicalName(q.name)), (item) => {
          newId(item.stream);
          // A body the store may link instead of reading (a renumbering) gets no credit until read.
          const body: IncomingBody = new IncomingBody(conn, item.stream, item.copyOf === undefined ? EAGER_BODY_CREDIT : 0, `message body ${item.stream}`, () => {
            incoming.delete(item.stream);
            save.bodyDone(item.stream, body);
          });
          incoming.set(item.stream, body);
          return body;
        }, listingDelta);
        saves.set(id, save);
        try {
          const saved = await store().saveMessages(q.name, save.requests());
          const listed = listingDelta && listings.saved(mailboxKey(canonicalName(q.name)), save.savedRecords(saved));
          return { saved, ...(listed ? { listed } : {}) } as OpReply<K>;
        } finally {
          saves.delete(id);
          save.finish();
        }
      }
      case 'updateFlags': {
        const q = a as OpRequest<'updateFlags'>;
        await store().updateFlags(q.name, q.updates);
        return {} as OpReply<K>;
      }
      case 'expunge': {
        const q = a as OpRequest<'expunge'>;
        await store().expunge(q.name, q.uids);
        return {} as OpReply<K>;
      }
      case 'createMailbox': {
        const q = a as OpRequest<'createMailbox'>;
        const options = { guid: q.guid, uidValidity: q.uidValidity, specialUse: q.specialUse };
        return { status: await store().createMailbox(q.name, options) } as OpReply<K>;
      }
      case 'renameMailbox': {
        const q = a as OpRequest<'renameMailbox'>;
        await store().renameMailbox(q.from, q.to);
        return {} as OpReply<K>;
      }
      case 'deleteMailbox':
        await store().deleteMailbox((a as OpRequest<'deleteMailbox'>).name);
        return {} as OpReply<K>;
      case 'updateMailbox': {
        const { name, ...update } = a as OpRequest<'updateMailbox'>;
        return { status: await store().updateMailbox(name, update) } as OpReply<K>;
      }
      case 'setSubscribed': {
        const q = a as OpRequest<'setSubscribed'>;
        await store().setSubscribed(q.name, q.subscribed);
        return {} as OpReply<K>;
      }
      case 'getPairState':
        return { state: Object.entries(await store().getPairState((a as OpRequest<'getPairState'>).peer)) } as OpReply<K>;
      case 'setPairState': {
        const q = a as OpRequest<'setPairState'>;
        await store().setPairState(q.peer, Object.fromEntries(q.state));
        return {} as OpReply<K>;
      }
      case 'getSyncedFlags': {
        const q = a as OpRequest<'getSyncedFlags'>;
        const found = await need('getSyncedFlags')(q.peer, q.mailbox, q.guids);
        return { entries: [...found].map(([guid, f]) => ({ guid, flags: f.flags, keywords: f.keywords })) } as OpReply<K>;
      }
      case 'setSyncedFlags': {
        const q = a as OpRequest<'setSyncedFlags'>;
        await need('setSyncedFlags')(q.peer, q.mailbox, q.entries, q.replaceAll);
        return {} as OpReply<K>;
      }
      case 'getMessagesOf': {
        const q = a as OpRequest<'getMessagesOf'>;
        return (await need('getMessagesOf')(q.name, { uids: new Set(q.uids), guids: new Set(q.guids) })) as OpReply<K>;
      }
      case 'flagChangeTimes': {
        const q = a as OpRequest<'flagChangeTimes'>;
        return { times: [...(await need('flagChangeTimes')(q.name, q.uids))] } as OpReply<K>;
      }
    }
    void r;
    throw usageError(`unknown operation ${op}`);
  }

  function dispatch(op: OpName, id: number, args: unknown): void {
    const task = (async () => {
      try {
        const value = await handle(op, id, args as OpRequest<typeof op>);
        // openMessage replied before its body started.
        if (op !== 'openMessage') reply(op, id, value);
      } catch (err) {
        conn.send(FrameType.Error, id, encodeError(err));
      }
    })();
    inFlight.set(id, task);
    void task.finally(() => inFlight.delete(id));
  }

  conn.onFrame = (frame) => {
    switch (frame.type) {
      case FrameType.Part: {
        const o = parseObject(frame.payload, `part of request ${frame.id}`);
        let entry = assemblers.get(frame.id);
        if (!entry) {
          if (!isOpName(o.op)) throw new ProtocolError(`part of request ${frame.id}: unknown operation`);
          newId(frame.id);
          if (assemblers.size + inFlight.size >= MAX_IN_FLIGHT) throw new ProtocolError(`more than ${MAX_IN_FLIGHT} requests at once`);
          entry = { op: o.op, asm: new MessageAssembler(OPS[o.op].request.chunked, `request ${o.op}`) };
          assemblers.set(frame.id, entry);
        } else if (o.op !== entry.op) throw new ProtocolError(`part of request ${frame.id}: its operation changed`);
        entry.asm.addPart(o);
        // Each request is held to MAX_ITEMS; all requests still arriving, together, too.
        let held = 0;
        for (const a of assemblers.values()) held += a.asm.itemCount;
        if (held > MAX_ITEMS) throw new ProtocolError(`requests still arriving hold more than ${MAX_ITEMS} items`);
        return;
      }
      case FrameType.Request: {
        const o = parseObject(frame.payload, `request ${frame.id}`);
        if (!isOpName(o.op)) throw new ProtocolError(`request ${frame.id}: unknown operation ${JSON.stringify(String(o.op)).slice(0, 60)}`);
        const entry = assemblers.get(frame.id);
        if (entry) {
          if (entry.op !== o.op) throw new ProtocolError(`request ${frame.id}: its operation changed`);
          assemblers.delete(frame.id);
        } else {
          newId(frame.id);
          if (inFlight.size >= MAX_IN_FLIGHT) throw new ProtocolError(`more than ${MAX_IN_FLIGHT} requests at once`);
        }
        const asm = entry?.asm ?? new MessageAssembler(OPS[o.op].request.chunked, `request ${o.op}`);
        dispatch(o.op, frame.id, asm.finish(OPS[o.op].request as WireSpec<unknown>, o));
        return;
      }
      case FrameType.Data: {
        const body = incoming.get(frame.id);
        if (body) body.data(frame.payload);
        else staleOrUnknown(frame);
        return;
      }
      case FrameType.End: {
        const body = incoming.get(frame.id);
        if (body) body.finish(frame.payload);
        else staleOrUnknown(frame);
        return;
      }
      case FrameType.Error: {
        const body = incoming.get(frame.id);
        const save = saves.get(frame.id);
        if (body) body.fail(decodeError(frame.payload, options.label, `message body ${frame.id}`));
        else if (save) save.abort(decodeError(frame.payload, options.label, `save ${frame.id}`));
        else staleOrUnknown(frame);
        return;
      }
      case FrameType.Credit: {
        const n = readU32Payload(frame);
        outgoing.get(frame.id)?.addCredit(n);
        return;
      }
      case FrameType.Cancel:
        outgoing.get(frame.id)?.cancel();
        return;
      case FrameType.Item: {
        const save = saves.get(frame.id);
        if (!save) throw new ProtocolError(`a message for save ${frame.id}, which is not in progress`);
        save.item(saveItem(parseObject(frame.payload, `save ${frame.id} item`), `save ${frame.id} item`));
        return;
      }
      case FrameType.ItemsEnd: {
        const save = saves.get(frame.id);
        if (!save) throw new ProtocolError(`the end of save ${frame.id}, which is not in progress`);
        save.end();
        return;
      }
      default:
        throw new ProtocolError(`a ${FrameType[frame.type]} frame, which only a server sends`);
    }
  };
  conn.start();

  await closed;
  // Requests still running finish (or fail on the closed connection) before the store closes.
  await Promise.allSettled([...inFlight.values()]);
  if (opened) {
    try {
      await opened.store.close();
    } finally {
      opened.release?.();
    }
  }
  await conn.end();
  if (closeError) throw closeError;
}

