/**
 * Message bodies. The engine copies a mailbox by opening its messages one after another in
 * UID order, so a miss fetches that message and the next few the index lists in one UID FETCH
 * (a round trip per message would dominate on any real network). Messages too large to hold
 * are streamed with imapflow's download() instead. Bodies are served with LF line ends
 * (line-ends.ts).
 */
import { Readable } from 'node:stream';
import { notFoundError } from '../../model/errors.js';
import type { MailboxName } from '../store.js';
import type { ImapContext } from './imap-context.js';
import { fetchBodies } from './imap-fetch.js';
import { refreshMailbox, select, serverUidOf } from './imap-mailbox-sync.js';
import { CrlfToLf, crlfToLf } from './line-ends.js';
import { formatUidSet } from './uid-set.js';

export interface BodyCache {
  key: string;
  bodies: Map<number, Buffer>;
}

const PREFETCH_MESSAGES = 64;
const PREFETCH_BYTES = 8 * 1024 * 1024;
/** Larger messages are streamed rather than held. */
const STREAM_ABOVE = 32 * 1024 * 1024;

export async function openImapMessage(ctx: ImapContext, cache: BodyCache, name: MailboxName, uid: number): Promise<Readable> {
  let known = ctx.index.listMailboxes().find((m) => m.name.join('\0') === name.join('\0'));
  let row = known && ctx.index.message(known.id, uid);
  if (!row) {
    // New since we last looked, or not there at all.
    known = (await refreshMailbox(ctx, name)).mailbox;
    row = ctx.index.message(known.id, uid);
  }
  const notFound = () => notFoundError(`mailbox '${name.join(ctx.names.delimiter || '/')}' has no message with UID ${uid} in ${ctx.session.account}`);
  if (!row || !known) throw notFound();
  const key = `${known.id}:${known.uidValidity}`;
  if (cache.key !== key) {
    cache.key = key;
    cache.bodies.clear();
  }
  const hit = cache.bodies.get(uid);
  if (hit) {
    cache.bodies.delete(uid);
    return Readable.from([hit]);
  }
  const path = ctx.names.toPath(name);
  const serverUid = serverUidOf(row);
  if (row.size > STREAM_ABOVE) {
    const stream = await ctx.session.run(`mailbox '${path}'`, async (client) => {
      await select(ctx, client, name, path);
      const dl = await client.download(String(serverUid), undefined, { uid: true });
      if (!('content' in dl) || !dl.content) throw notFound();
      return dl.content as Readable;
    });
    return stream.pipe(new CrlfToLf());
  }
  // This message and the ones after it, as far as the budget goes.
  cache.bodies.clear();
  const rows = ctx.index.messagesSince(known.id, 0).filter((r) => r.uid >= uid).sort((a, b) => a.uid - b.uid);
  const wanted = new Map<number, number>();
  let bytes = 0;
  for (const r of rows) {
    if (wanted.size > 0 && (wanted.size >= PREFETCH_MESSAGES || bytes + r.size > PREFETCH_BYTES || r.size > STREAM_ABOVE)) break;
    wanted.set(serverUidOf(r), r.uid);
    bytes += r.size;
  }
  const bodies = await ctx.session.run(`mailbox '${path}'`, async (client) => {
    await select(ctx, client, name, path);
    return fetchBodies(client, [...wanted.keys()], formatUidSet(wanted.keys()));
  });
  let mine: Buffer | undefined;
  for (const [s, body] of bodies) {
    const u = wanted.get(s);
    if (u === undefined) continue;
    if (u === uid) mine = crlfToLf(body);
    else cache.bodies.set(u, crlfToLf(body));
  }
  if (!mine) throw notFound();
  return Readable.from([mine]);
}
