/**
 * Message bodies. The engine copies a mailbox by opening its messages one after another in
 * UID order, so a miss fetches that message and the next few the index lists in one UID FETCH
 * (a round trip per message would dominate on any real network). Once the engine takes a body
 * it was not asked for yet, it is reading in order: the next batches are then queued on the
 * connection while it consumes this one, so the server never waits for us between batches.
 * At most BATCHES_AHEAD batches are held beyond the one being read, and no more than
 * READ_AHEAD_BYTES, counted as the bodies that arrived (before they arrive, as the sizes the
 * index holds, which no accepted body exceeds by more than a slack: body-size.ts).
 * Messages too large to hold are streamed with imapflow's download() instead. Bodies are
 * served with LF line ends (line-ends.ts).
 */
import { Readable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import { notFoundError } from '../../model/errors.js';
import type { IndexedMailbox, IndexedMessage } from '../index/change-index.js';
import { sameMailbox, type MailboxName } from '../store.js';
import type { ImapContext } from './imap-context.js';
import { SizeGuard, sizeError, wireCap } from './body-size.js';
import { fetchBodies, type FetchedBodies } from './imap-fetch.js';
import { indexedMailbox, refreshMailbox, select, serverUidOf } from './imap-mailbox-sync.js';
import { CrlfToLf, crlfToLfInPlace } from './line-ends.js';
import { formatUidSet } from './uid-set.js';

const PREFETCH_MESSAGES = 64;
const PREFETCH_BYTES = 8 * 1024 * 1024;
/** Larger messages are streamed rather than held. */
const STREAM_ABOVE = 32 * 1024 * 1024;
/** Batches queued beyond the one being read: one on the server, one waiting behind it. */
const BATCHES_AHEAD = 2;
/** No batch is queued while the batches held reach this. */
const READ_AHEAD_BYTES = 3 * PREFETCH_BYTES;

/** The rows of the mailbox being read, valid while the index row's stamp holds. */
interface View {
  name: MailboxName;
  guid: string;
  stamp: string;
  /** The index's write count when the stamp was last checked. */
  writes: number;
  path: string;
  rows: IndexedMessage[];
  /** Local UID -> position in `rows`. */
  at: Map<number, number>;
}

/** Rows [first, last) of the view, fetched in one command. */
interface Batch {
  first: number;
  last: number;
  /** Local UID -> LF body (or why the server's is not the message), taken out as the engine opens them. */
  bodies: Map<number, Buffer | Error>;
  /** False when the fetch ended before every message was answered. */
  complete: boolean;
  /** What the batch holds: the sizes asked for until the bodies arrive, then theirs. */
  bytes: number;
  /** Settles with the error of a failed fetch instead of rejecting, so no rejection floats. */
  done: Promise<unknown>;
}

/** `sizes`: server UID -> the size the index holds. */
type Fetch = (sizes: Map<number, number>, set: string) => Promise<FetchedBodies>;

/** Anything the index changed in this mailbox (a save, a look at the server) moves one of these. */
function stampOf(m: IndexedMailbox): string {
  return `${m.id}:${m.uidValidity}:${m.highestModseq}:${m.uidNext}:${m.messages}`;
}

export class BodyReader {
  private view: View | undefined;
  /** In row order; the first is the one being read. */
  private batches: Batch[] = [];

  constructor(private readonly ctx: ImapContext) {}

  async open(name: MailboxName, uid: number): Promise<Readable> {
    let view = this.current(name);
    if (!view || !view.at.has(uid)) {
      // New since we last looked, or not there at all.
      await refreshMailbox(this.ctx, name);
      view = this.current(name);
    }
    const i = view?.at.get(uid);
    const notFound = () => notFoundError(`mailbox '${name.join(this.ctx.names.delimiter || '/')}' has no message with UID ${uid} in ${this.ctx.session.account}`);
    if (!view || i === undefined) throw notFound();
    const row = view.rows[i]!;
    if (row.size > STREAM_ABOVE) return this.stream(view, row, notFound);

    const b = this.batches.findIndex((x) => x.first <= i && i < x.last);
    let batch = b >= 0 ? this.batches[b] : undefined;
    // Batches before this one were skipped by the engine: their bodies will not be asked for.
    this.batches = b >= 0 ? this.batches.slice(b) : [];
    if (batch && (await batch.done) !== undefined) {
      // Failed (a dropped connection, most likely): fetch again from here, with retries.
      this.batches = [];
      batch = undefined;
    }
    // Cut off before this message was answered (a body over its size dropped the connection).
    if (batch && !batch.complete && !batch.bodies.has(uid)) {
      this.batches = [];
      batch = undefined;
    }
    const hit = batch !== undefined;
    if (!batch) {
      batch = this.issue(view, i, (sizes, set) =>
        this.ctx.session.run(`mailbox '${view.path}'`, async (client) => {
          await select(this.ctx, client, view.name, view.path);
          return fetchBodies(client, sizes, set, this.where(view));
        }),
      );
      this.batches = [batch];
      const err = await batch.done;
      if (err !== undefined) {
        this.batches = [];
        throw err;
      }
    }
    const body = batch.bodies.get(uid);
    batch.bodies.delete(uid);
    if (body instanceof Error) throw body;
    if (!body) throw notFound();
    batch.bytes -= body.length;
    if (hit) await this.readAhead(view);
    return Readable.from([body]);
  }

  private where(view: View): string {
    return `${this.ctx.session.account}: mailbox '${view.path}'`;
  }

  /** The view of `name`, rebuilt when the index changed that mailbox since it was made. */
  private current(name: MailboxName): View | undefined {
    const v = this.view;
    if (v && sameMailbox(v.name, name)) {
      if (this.ctx.index.writes === v.writes) return v;
      const row = this.ctx.index.mailboxByGuid(v.guid);
      if (row && sameMailbox(row.name, name) && stampOf(row) === v.stamp) {
        v.writes = this.ctx.index.writes;
        return v;
      }
    }
    this.view = undefined;
    this.batches = [];
    const known = indexedMailbox(this.ctx, name);
    if (!known) return undefined;
    const writes = this.ctx.index.writes;
    const rows = this.ctx.index.messages(known.id);
    this.view = { name, guid: known.guid, stamp: stampOf(known), writes, path: this.ctx.names.toPath(name), rows, at: new Map(rows.map((r, k) => [r.uid, k])) };
    return this.view;
  }

  /** Queues the next batches behind the one being read, on the connection as it is now. */
  private async readAhead(view: View): Promise<void> {
    const more = () =>
      this.batches.length <= BATCHES_AHEAD && this.batches.at(-1)!.last < view.rows.length && this.batches.reduce((n, b) => n + b.bytes, 0) < READ_AHEAD_BYTES;
    if (!more()) return;
    let client: ImapFlow;
    try {
      client = await this.ctx.session.run(`mailbox '${view.path}'`, async (c) => {
        await select(this.ctx, c, view.name, view.path);
        return c;
      });
    } catch {
      return; // the engine's next miss fetches in the foreground and reports what is wrong
    }
    // Nothing else ran on this store since the select above: each FETCH is queued right behind
    // it, in this mailbox, before any command another operation could send.
    if (this.view !== view || client.mailbox === false || client.mailbox.path !== view.path) return;
    while (more()) this.batches.push(this.issue(view, this.batches.at(-1)!.last, (sizes, set) => fetchBodies(client, sizes, set, this.where(view))));
  }

  private issue(view: View, first: number, fetch: Fetch): Batch {
    const wanted = new Map<number, number>();
    const sizes = new Map<number, number>();
    let bytes = 0;
    let last = first;
    for (; last < view.rows.length; last++) {
      const r = view.rows[last]!;
      if (r.size > STREAM_ABOVE) continue; // streamed when asked for
      if (wanted.size > 0 && (wanted.size >= PREFETCH_MESSAGES || bytes + r.size > PREFETCH_BYTES)) break;
      wanted.set(serverUidOf(r), r.uid);
      sizes.set(serverUidOf(r), r.size);
      bytes += r.size;
    }
    const batch: Batch = { first, last, bodies: new Map(), complete: true, bytes, done: Promise.resolve() };
    batch.done = fetch(sizes, formatUidSet(wanted.keys())).then(
      (got) => {
        batch.complete = got.complete;
        batch.bytes = 0;
        // The wire buffers are ours alone: the CRs are squeezed out where they lie.
        for (const [s, body] of got.bodies) {
          const u = wanted.get(s);
          if (u === undefined) continue;
          const lf = body instanceof Error ? body : crlfToLfInPlace(body);
          batch.bodies.set(u, lf);
          if (!(lf instanceof Error)) batch.bytes += lf.length;
        }
        return undefined;
      },
      (err: unknown) => err ?? new Error('fetch failed'),
    );
    return batch;
  }

  private async stream(view: View, row: IndexedMessage, notFound: () => Error): Promise<Readable> {
    const stream = await this.ctx.session.run(`mailbox '${view.path}'`, async (client) => {
      await select(this.ctx, client, view.name, view.path);
      // A byte past the most the message can take is enough to know it is not the message.
      const dl = await client.download(String(serverUidOf(row)), undefined, { uid: true, maxBytes: wireCap(row.size) + 1 });
      if (!('content' in dl) || !dl.content) throw notFound();
      return dl.content as Readable;
    });
    const guard = new SizeGuard(row.size, (problem) => sizeError(this.where(view), serverUidOf(row), problem));
    // Errors travel down the pipe, so the engine reading the end sees them.
    const lf = new CrlfToLf();
    stream.on('error', (err) => guard.destroy(err));
    guard.on('error', (err) => {
      stream.destroy();
      lf.destroy(err);
    });
    return stream.pipe(guard).pipe(lf);
  }
}
