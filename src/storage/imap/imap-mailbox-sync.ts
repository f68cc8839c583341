/**
 * Bringing the side index up to date with one server mailbox, down the capability ladder:
 * - nothing moved (STATUS equals what we recorded, HIGHESTMODSEQ included): one round trip;
 * - CONDSTORE: FETCH CHANGEDSINCE, with VANISHED under QRESYNC; without QRESYNC, expunges are
 *   found by comparing EXISTS with what we know, and a UID SEARCH only when they differ;
 * - neither: UID FETCH 1:* FLAGS, compared with the index.
 * Whatever differs becomes a change with a new store-local modseq; an expunge keeps the GUID
 * the index remembers. UIDs in the index are the store's own (`uid`), mapped to server UIDs
 * (kept in the row's `file`), so the store can honour wanted UIDs and UIDVALIDITY the way the
 * contract asks although the server hands out its own.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ImapFlow } from 'imapflow';
import { notFoundError } from '../../model/errors.js';
import { headerHash, matchingHash } from '../../model/header-hash.js';
import type { IndexedMailbox, IndexedMessage, MessageChange } from '../index/change-index.js';
import { sameMailbox, type MailboxName } from '../store.js';
import { parseServerState, type ImapContext, type ServerState } from './imap-context.js';
import { fetchMeta, type FetchedMeta } from './imap-fetch.js';
import { splitServerFlags } from './imap-flags.js';
import { chunkUids, formatUidSet } from './uid-set.js';

export interface Refreshed {
  mailbox: IndexedMailbox;
  path: string;
}

export function newGuid(): string {
  return randomBytes(16).toString('hex');
}

export function indexedMailbox(ctx: ImapContext, name: MailboxName): IndexedMailbox | undefined {
  return ctx.index.listMailboxes().find((m) => sameMailbox(m.name, name));
}

/**
 * A header hash is a GUID only for the first message of a mailbox that has it; copies (same
 * Date and Message-ID) get one derived from the hash and their server UID, so that no two
 * messages of a mailbox share a GUID. Matching by header hash goes through messageHashes.
 */
export function distinctGuid(hash: string, serverUid: number, taken: Set<string>): string {
  let guid = hash;
  if (taken.has(guid)) guid = createHash('md5').update(`${hash}:${serverUid}`).digest('hex');
  taken.add(guid);
  return guid;
}

export function serverUidOf(m: IndexedMessage): number {
  return Number(m.file);
}

function condstoreOn(client: ImapFlow): boolean {
  return client.enabled.has('CONDSTORE');
}

/** Selects `path` unless it already is; a missing mailbox is a not-found error naming it. */
export async function select(ctx: ImapContext, client: ImapFlow, name: MailboxName, path: string, force = false) {
  const current = client.mailbox;
  if (!force && current && current.path === path && !current.readOnly) return current;
  try {
    return await client.mailboxOpen(path);
  } catch (err) {
    if (isMissingError(err)) throw missing(ctx, name);
    throw err;
  }
}

/**
 * Leaves the selected mailbox without expunging anything (UNSELECT). False where the server
 * does not offer UNSELECT (CLOSE would expunge), and the mailbox stays selected.
 */
export async function unselect(client: ImapFlow): Promise<boolean> {
  if (!client.mailbox) return true;
  if (!client.capabilities.has('UNSELECT')) return false;
  // imapflow's CLOSE command sends UNSELECT when asked to and keeps its own state in step.
  const run = (client as unknown as { run(command: string, opts: { unselect: boolean }): Promise<boolean | undefined> }).run.bind(client);
  return (await run('CLOSE', { unselect: true })) === true && !client.mailbox;
}

export function isMissingError(err: unknown): boolean {
  const e = err as { serverResponseCode?: string; code?: string; responseStatus?: string; response?: unknown };
  if (e?.serverResponseCode === 'NONEXISTENT' || e?.code === 'NotFound') return true;
  // Not every server (Dovecot on SELECT, for one) sends the [NONEXISTENT] code.
  return e?.responseStatus === 'NO' && /doesn't exist|does not exist|no such mailbox|unknown mailbox/i.test(String(e.response ?? ''));
}

export function missing(ctx: ImapContext, name: MailboxName): Error {
  return notFoundError(`mailbox '${name.join(ctx.names.delimiter || '/')}' does not exist in ${ctx.session.account}`);
}

export interface KnownStatus {
  messages?: number;
  uidNext?: number;
  uidValidity?: bigint | number;
  highestModseq?: bigint | number;
}

/** `opts.status`: the server's STATUS as LIST-STATUS already gave it, saving a round trip. */
/**
 * `opts.keepPending`: leave journalled saves this look did not find in the journal (a save is
 * in flight and will resend them); otherwise they are dropped, since every message the server
 * stored since the journal was written has just been seen.
 */
export async function refreshMailbox(ctx: ImapContext, name: MailboxName, opts: { full?: boolean; status?: KnownStatus; keepPending?: boolean } = {}): Promise<Refreshed> {
  const path = ctx.names.toPath(name);
  return ctx.session.run(`mailbox '${path}'`, async (client) => {
    const condstore = condstoreOn(client);
    let known = indexedMailbox(ctx, name);
    let before = known && parseServerState(known.scanFingerprint);
    let statusRefused = false;
    // STATUS of the mailbox this session has selected answers from the session's own view,
    // which lags behind other clients; there the CHANGEDSINCE fetch below is the check.
    const selectedHere = client.mailbox && client.mailbox.path === path;
    if (known && before && !opts.full && !selectedHere && ctx.pending.of(known.guid).length === 0) {
      const st = opts.status ?? (await client.status(path, { messages: true, uidNext: true, uidValidity: true, ...(condstore ? { highestModseq: true } : {}) }).catch((err: unknown) => {
        if (isMissingError(err)) throw missing(ctx, name);
        throw err;
      }));
      // imapflow answers false for any refused STATUS; a fresh SELECT below says why.
      statusRefused = !st;
      if (st && condstore && before.v === Number(st.uidValidity) && before.n === st.uidNext && before.x === st.messages && before.m === Number(st.highestModseq ?? 0) && before.m > 0) {
        return { mailbox: known, path };
      }
    }
    // Mail other clients added is in `1:*` only once the server told this session (EXISTS).
    if (selectedHere && !statusRefused) await client.noop();
    const box = await select(ctx, client, name, path, statusRefused);
    const server: ServerState = { v: Number(box.uidValidity), n: box.uidNext, x: box.exists, m: condstore && !box.noModseq ? Number(box.highestModseq ?? 0) : 0 };
    if (!known) {
      known = ctx.index.addMailbox(newGuid(), name, server.v);
      // First sight: the store's UIDs are the server's.
      ctx.index.applyChanges(known.id, [], { uidNext: server.n, fingerprint: null });
      known = ctx.index.mailboxByGuid(known.guid)!;
    } else if (before && before.v !== server.v && ctx.index.messages(known.id).length > 0) {
      // The server renumbered the mailbox: every UID we mapped is void. With nothing mapped
      // nothing is void, and the local UIDVALIDITY stays: imap4d gives an mbox without mail a
      // new UIDVALIDITY at every SELECT.
      ctx.index.resetMailbox(known.id, Math.max(server.v, known.uidValidity + 1));
      known = ctx.index.mailboxByGuid(known.guid)!;
      before = undefined;
    }
    const rows = ctx.index.messages(known.id);
    const byServerUid = new Map(rows.map((r) => [serverUidOf(r), r]));
    let fetched: FetchedMeta[];
    let gone: number[];
    let duplicates = 0;
    const incremental = !opts.full && before !== undefined && server.m > 0 && before.m > 0 && known.scanFingerprint !== null;
    if (incremental) {
      const qresync = client.enabled.has('QRESYNC');
      const r = await fetchMeta(client, '1:*', { xGuid: ctx.session.xGuid, headers: false, condstore: true, changedSince: before!.m, vanished: qresync });
      fetched = r.messages;
      duplicates = r.duplicates;
      gone = r.vanished.filter((u) => byServerUid.has(u));
      // Expunges the server already announced to this session (unsolicited, while the mailbox
      // stayed selected) are not repeated by VANISHED (EARLIER); counting catches them, and
      // only a mismatch costs a UID SEARCH.
      const added = fetched.filter((m) => !byServerUid.has(m.uid)).length;
      const exists = client.mailbox ? client.mailbox.exists : server.x;
      if (rows.length + added - gone.length !== exists) {
        const present = new Set((await client.search({ all: true }, { uid: true })) || []);
        gone = rows.map(serverUidOf).filter((u) => !present.has(u));
      }
    } else {
      const r = await fetchMeta(client, '1:*', { xGuid: ctx.session.xGuid, headers: false, condstore: server.m > 0 });
      fetched = r.messages;
      duplicates = r.duplicates;
      const present = new Set(fetched.map((m) => m.uid));
      gone = rows.map(serverUidOf).filter((u) => !present.has(u));
    }
    // The view of a mailbox this session keeps selected is as old as its SELECT: our own
    // APPENDs since moved UIDNEXT and HIGHESTMODSEQ on. What the listing just saw is newer, and
    // never ahead of the server, so the next look asks only for what changed after it (a
    // mailbox uploaded to was otherwise listed whole again by every look that followed).
    for (const m of fetched) {
      if (server.m > 0 && m.modseq !== undefined && m.modseq > server.m) server.m = m.modseq;
      if (m.uid >= server.n) server.n = m.uid + 1;
    }
    const fresh = fetched.filter((m) => !byServerUid.has(m.uid));
    const pending = ctx.pending.of(known.guid);
    // Without a usable X-GUID a new message is known by its header hash.
    const unnamed = !ctx.session.xGuid || pending.length > 0 ? fresh : fresh.filter((m) => !m.xGuid);
    if (unnamed.length > 0) await addHeaders(client, unnamed);
    const badGuids = fresh.filter((m) => m.unusableXGuid !== undefined);
    if (badGuids.length > 0) {
      ctx.warn(`${ctx.session.account}: mailbox '${path}': the server's X-GUID of ${badGuids.length} new message(s) cannot serve as a GUID (such as ${JSON.stringify(badGuids[0]!.unusableXGuid)} for UID ${badGuids[0]!.uid}); they are known by their header hash`);
    }
    if (duplicates > 0) {
      warnOnce(ctx, `${ctx.session.account}: mailbox '${path}': the server lists ${duplicates} message(s) under a UID another message has; only the first of each is seen (the server's index needs repair)`);
    }
    const changes: MessageChange[] = [];
    // Nothing recorded yet under this UIDVALIDITY (a mailbox first listed, or one the server
    // renumbered): no local UID was ever handed out, so every message keeps the server's UID.
    // Starting at the UIDNEXT the listing gave would shift them all past the server's.
    const firstLook = rows.length === 0 && pending.length === 0 && known.highestModseq === known.firstModseq;
    let uidNext = firstLook ? 1 : known.uidNext;
    const taken = new Set(rows.map((r) => r.uid));
    const guids = new Set(rows.map((r) => r.guid));
    for (const m of fetched) {
      const { letters, keywords } = splitServerFlags(m.flags);
      const row = byServerUid.get(m.uid);
      if (row) {
        if (row.flagLetters !== letters || row.keywords.join('\n') !== keywords.join('\n')) {
          changes.push({ kind: 'update', message: { ...row, flagLetters: letters, keywords }, bumpModseq: true });
        }
        continue;
      }
      const hash = m.header ? matchingHash(m.header) : undefined;
      // Journals written before the matching hash hold the v3 one.
      const claimed = hash !== undefined ? ctx.pending.take(known.guid, [hash, headerHash(m.header!)], m.size) : undefined;
      // A journalled save keeps the UID it reserved; other new mail gets the server's UID where free.
      const uid = claimed && !taken.has(claimed.uid) ? claimed.uid : Math.max(uidNext, m.uid);
      taken.add(uid);
      uidNext = Math.max(uidNext, uid + 1);
      changes.push({
        kind: 'add',
        message: {
          uid,
          guid: claimed?.guid || m.xGuid || (hash !== undefined ? distinctGuid(hash, m.uid, guids) : newGuid()),
          file: String(m.uid),
          flagLetters: letters,
          keywords,
          receivedDate: m.internalDate,
          size: claimed?.size ?? m.size,
        },
      });
    }
    for (const u of gone) {
      const row = byServerUid.get(u)!;
      changes.push({ kind: 'expunge', uid: row.uid, guid: row.guid });
    }
    if (firstLook) uidNext = Math.max(uidNext, server.n, known.uidNext);
    ctx.index.applyChanges(known.id, changes, { uidNext, fingerprint: JSON.stringify(server) });
    if (!opts.keepPending && ctx.pending.of(known.guid).length > 0) ctx.pending.set(known.guid, []);
    return { mailbox: ctx.index.mailboxByGuid(known.guid)!, path };
  });
}

const warned = new WeakMap<ImapContext, Set<string>>();

/** A warning about the server's state, which each look at the mailbox would repeat. */
function warnOnce(ctx: ImapContext, msg: string): void {
  const seen = warned.get(ctx) ?? new Set<string>();
  warned.set(ctx, seen);
  if (seen.has(msg)) return;
  seen.add(msg);
  ctx.warn(msg);
}

/** Date and Message-ID of many messages, a few thousand per command. */
export async function addHeaders(client: ImapFlow, messages: FetchedMeta[]): Promise<void> {
  const byUid = new Map(messages.map((m) => [m.uid, m]));
  for (const chunk of chunkUids(messages.map((m) => m.uid))) {
    const r = await fetchMeta(client, formatUidSet(chunk), { xGuid: false, headers: true, condstore: false });
    for (const h of r.messages) {
      const m = byUid.get(h.uid);
      if (m) m.header = h.header;
    }
  }
}
