/**
 * saveMessages for IMAP: bodies are read (imapflow needs each literal whole), turned to CRLF,
 * journalled, and sent in MULTIAPPEND batches. The journal (pending-appends.ts) is what makes
 * a retry after a dropped connection, or the next run after a crash, safe: messages the server
 * did store are recognised instead of being sent again. The next batch's bodies are read while
 * the server stores the current one; batches are still sent, journalled and recorded one after
 * another, so at most two are held. A batch the server refuses is sent again one message at a
 * time, after a look at the mailbox finds (through the journal) what it stored before refusing;
 * a message refused for an internal date before 1970 (Cyrus) is sent again dated 1970-01-01.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import { failpoint } from '../../model/failpoint.js';
import { headerBlockOf, matchingHash } from '../../model/header-hash.js';
import type { MessageChange } from '../index/change-index.js';
import type { MailboxName, SavedMessage, SaveRequest } from '../store.js';
import { parseServerState, type ImapContext } from './imap-context.js';
import { appendBatch, canMultiappend, type OutgoingMessage } from './imap-append.js';
import { imapError, isConnectionError, isThrottle, serverText } from './imap-errors.js';
import { fetchMeta } from './imap-fetch.js';
import { keywordFilter, toLetters } from './imap-flags.js';
import { findAppended } from './find-appended.js';
import { distinctGuid, refreshMailbox, select, serverUidOf, unselect } from './imap-mailbox-sync.js';
import { countCrlf, lfToCrlf } from './line-ends.js';
import type { PendingAppend } from './pending-appends.js';
import { formatUidSet } from './uid-set.js';

/** A batch is sent when it holds this many messages or bytes. */
const BATCH_MESSAGES = 64;
const BATCH_BYTES = 4 * 1024 * 1024;

interface Item extends PendingAppend {
  wire: Buffer;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  // Most bodies arrive in one chunk (a file read whole): Buffer.concat would copy it anyway.
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

export async function saveImapMessages(
  ctx: ImapContext,
  name: MailboxName,
  messages: Iterable<SaveRequest> | AsyncIterable<SaveRequest>,
): Promise<SavedMessage[]> {
  // Nothing to save (the engine asks for every mailbox it copies): no look at the server.
  const source = Symbol.asyncIterator in messages ? messages[Symbol.asyncIterator]() : messages[Symbol.iterator]();
  const first = await source.next();
  if (first.done) return [];
  const { mailbox, path } = await refreshMailbox(ctx, name);
  const results: SavedMessage[] = [];
  let uidNext = mailbox.uidNext;
  let batch: Item[] = [];
  let bytes = 0;
  const refused = new Set<string>();
  let allowKeyword: (kw: string) => boolean = () => true;
  let multi = true;

  const client = () => ctx.session.run(`mailbox '${path}'`, async (c) => {
    const box = await select(ctx, c, name, path);
    allowKeyword = keywordFilter(box.permanentFlags);
    multi = canMultiappend(c);
    return c;
  });
  await client();

  let inUse: Set<string> | undefined;
  const guidsInUse = () => (inUse ??= new Set(ctx.index.messages(mailbox.id).map((r) => r.guid)));
  let serverUids: Set<number> | undefined;
  const knownServerUids = () => (serverUids ??= new Set(ctx.index.messages(mailbox.id).map(serverUidOf)));
  // Without UIDPLUS: no UID below this can be a message this save appended and has not found.
  let nextFloor: number | undefined;
  const appendFloor = (c: ImapFlow) => {
    if (nextFloor !== undefined) return nextFloor;
    let floor = Number(c.mailbox ? c.mailbox.uidNext : 1) || 1;
    for (const u of knownServerUids()) floor = Math.max(floor, u + 1);
    return (nextFloor = floor);
  };

  // The server state the next recorded save is stamped with (see lookForAppended).
  let renumbered: string | undefined;
  const fingerprint = () => renumbered ?? ctx.index.mailboxByGuid(mailbox.guid)?.scanFingerprint ?? null;

  const record = (items: readonly Item[], uids: readonly number[], xGuids: Map<number, string>, reserved: number) => {
    const changes: MessageChange[] = items.map((it, i) => ({
      kind: 'add',
      message: {
        uid: it.uid,
        guid: it.guid || xGuids.get(uids[i]!) || distinctGuid(it.hash, uids[i]!, guidsInUse()),
        file: String(uids[i]),
        flagLetters: toLetters(it.flags),
        keywords: [...it.keywords].sort(),
        receivedDate: it.receivedDate,
        size: it.size,
      },
    }));
    const given = ctx.index.applyChanges(mailbox.id, changes, { uidNext: reserved, fingerprint: fingerprint() });
    renumbered = undefined;
    changes.forEach((c, i) => c.kind === 'add' && results.push({ uid: c.message.uid, guid: c.message.guid, modseq: given[i]! }));
  };

  /**
   * Without UIDPLUS the appended messages are found by a look at the mailbox after the APPENDs.
   * They are sent with the mailbox not selected in this session and looked for after a fresh
   * SELECT: GNU mailutils' imap4d, when the mbox it has selected carries no X-IMAPbase yet
   * (empty, or written by a delivery agent), shows its session only the first message appended
   * there, and leaving that view (SELECT, UNSELECT, CLOSE, LOGOUT) writes the mbox back as the
   * view has it, dropping every other message the session appended.
   */
  let unplaced: Item[] = [];
  const lookForAppended = async (c: ImapFlow, reserved: number) => {
    if (unplaced.length === 0) return;
    const group = unplaced;
    unplaced = [];
    const box = await select(ctx, c, name, path);
    const known = parseServerState(fingerprint());
    if (known && known.v !== Number(box.uidValidity) && ctx.index.messages(mailbox.id).length === 0) {
      // A mailbox that held nothing we mapped voids no UID by renumbering: imap4d makes up a
      // new UIDVALIDITY at each SELECT until an mbox holds mail to write X-IMAPbase into.
      renumbered = JSON.stringify({ ...known, v: Number(box.uidValidity) });
    }
    const found = await findAppended(c, group.map((it) => it.hash), appendFloor(c), (uid) => knownServerUids().has(uid));
    nextFloor = found.next;
    const placed = group.filter((_, i) => found.uids[i] !== undefined);
    const uids = found.uids.filter((u) => u !== undefined);
    for (const u of uids) knownServerUids().add(u);
    if (placed.length > 0) await placeAt(c, placed, uids, reserved);
  };

  const placeAt = async (c: ImapFlow, placed: Item[], uids: number[], reserved: number) => {
    const xGuids = new Map<number, string>();
    if (ctx.session.xGuid && placed.some((it) => !it.guid)) {
      for (const m of (await fetchMeta(c, formatUidSet(uids), { xGuid: true, headers: false, condstore: false })).messages) if (m.xGuid) xGuids.set(m.uid, m.xGuid);
    }
    record(placed, uids, xGuids, reserved);
    // Written with the next batch's entries: one journal write per batch.
    ctx.pending.forget(mailbox.guid, new Set(placed.map(findPending).filter((p) => p !== undefined)));
  };

  /** Sends `items`, one by one when the server refuses the batch, so one bad message costs only itself. */
  const send = async (c: ImapFlow, items: Item[], reserved: number): Promise<void> => {
    const out = (it: Item): OutgoingMessage => ({ wire: it.wire, flags: [...it.flags, ...it.keywords], receivedDate: it.receivedDate });
    const groups = multi ? [items] : items.map((it) => [it]);
    const uidplus = c.capabilities.has('UIDPLUS');
    for (const group of groups) {
      let uids: number[] | undefined;
      try {
        if (!uidplus && c.mailbox) {
          // The floor is what the fresh view says, taken before leaving it.
          appendFloor(c);
          await unselect(c);
        }
        uids = await appendBatch(c, path, group.map(out));
      } catch (err) {
        if (isConnectionError(err) || isThrottle(err) || (err as { serverResponseCode?: string }).serverResponseCode === 'OVERQUOTA') throw err;
        // What was appended before is found before anything else looks at the mailbox.
        await lookForAppended(c, reserved);
        if (group.length > 1) {
          // MULTIAPPEND is all or nothing, but not on every server: what it kept is claimed
          // from the journal, and only the rest is sent again.
          await refreshMailbox(ctx, name, { keepPending: true });
          const stored = group.filter((it) => !findPending(it));
          collectClaimed(stored);
          for (const it of group) if (!stored.includes(it)) await send(c, [it], reserved);
          continue;
        }
        const it = group[0]!;
        if (it.receivedDate < 0) {
          // Some servers (Cyrus) take no internal date before the epoch: the earliest they do.
          ctx.warn(`${ctx.session.account}: mailbox '${path}': the server refused the received date ${new Date(it.receivedDate).toISOString()} of message ${it.guid || it.hash} (UID ${it.uid}) (${serverText(err)}); it is saved dated 1970-01-01`);
          it.receivedDate = 0;
          await send(c, [it], reserved);
          continue;
        }
        ctx.warn(`${ctx.session.account}: mailbox '${path}': the server refused message ${it.guid || it.hash} (UID ${it.uid}): ${serverText(err)}`);
        const refusedEntry = findPending(it);
        if (refusedEntry) ctx.pending.forget(mailbox.guid, new Set([refusedEntry]));
        continue;
      }
      failpoint('imap-after-append');
      if (uids) await placeAt(c, group, uids, reserved);
      else unplaced.push(...group);
    }
    // Messages not found here are left to the journal (see flush).
    await lookForAppended(c, reserved);
  };

  const findPending = (it: Item): PendingAppend | undefined =>
    ctx.pending.of(mailbox.guid).find((p) => p.uid === it.uid && p.hash === it.hash && p.wireSize === it.wireSize);

  const flush = async () => {
    if (batch.length === 0) return;
    const items = batch;
    const reserved = uidNext;
    batch = [];
    bytes = 0;
    // Journal first and reserve the UIDs, so a crash after the server stored them loses nothing.
    ctx.pending.set(mailbox.guid, [...ctx.pending.of(mailbox.guid), ...items.map(({ wire: _w, ...p }) => p)]);
    ctx.index.applyChanges(mailbox.id, [], { uidNext: reserved, fingerprint: ctx.index.mailboxByGuid(mailbox.guid)?.scanFingerprint ?? null });
    const retries = 5;
    const { budget, release } = ctx.session.budget();
    try {
      for (let attempt = 1; ; attempt++) {
        const left = items.filter((it) => findPending(it));
        if (left.length === 0) break;
        try {
          await send(await client(), left, reserved);
          // Without UIDPLUS the messages are found by header hash and size.
          if (items.some((it) => findPending(it))) {
            await refreshMailbox(ctx, name, { full: true, keepPending: true });
            collectClaimed(items.filter((it) => !findPending(it)));
            for (const it of items.filter((it) => findPending(it))) ctx.warn(`${ctx.session.account}: mailbox '${path}': message ${it.guid || it.hash} was appended but could not be found again`);
            ctx.pending.set(mailbox.guid, []);
          }
          break;
        } catch (err) {
          budget?.fail();
          const retriable = isConnectionError(err) || isThrottle(err);
          if (retriable && budget?.spent()) throw ctx.session.timedOut(`mailbox '${path}'`, err);
          if (!retriable || attempt >= retries) throw imapError(err, `${ctx.session.account}: mailbox '${path}'`);
          const delay = ctx.session.backoff(200, attempt, budget, `mailbox '${path}'`, err);
          ctx.warn(`${ctx.session.account}: connection lost while saving to '${path}'; retrying in ${delay} ms`);
          await sleep(delay);
          // What reached the server before the drop is claimed from the journal, not sent again.
          const before = new Set(left.filter((it) => findPending(it)));
          await refreshMailbox(ctx, name, { keepPending: true });
          collectClaimed([...before].filter((it) => !findPending(it)));
        }
      }
    } finally {
      release();
    }
  };

  const collectClaimed = (items: Item[]) => {
    for (const it of items) {
      const row = ctx.index.message(mailbox.id, it.uid) ?? ctx.index.messages(mailbox.id).find((r) => r.guid === it.guid && it.guid !== '');
      if (row && !results.some((r) => r.uid === row.uid)) results.push({ uid: row.uid, guid: row.guid, modseq: row.modseq });
    }
  };

  // The batch the server is storing while the next one is read; awaited before the next is sent.
  let sending: Promise<void> | undefined;
  const sendBehind = async () => {
    const before = sending;
    sending = undefined;
    if (before) await before;
    const next = flush();
    next.catch(() => {}); // awaited (and so reported) before the next batch or at the end
    sending = next;
  };

  let finished = false;
  try {
    for (let next: IteratorResult<SaveRequest> = first; !next.done; next = await source.next()) {
      const req = next.value;
      const lf = await readAll(await req.body());
      const wire = lfToCrlf(lf);
      const uid = req.uid !== undefined && req.uid >= uidNext ? req.uid : uidNext;
      uidNext = uid + 1;
      const keywords = req.keywords.filter((kw) => {
        if (allowKeyword(kw)) return true;
        if (!refused.has(kw)) ctx.warn(`${ctx.session.account}: mailbox '${path}' does not accept the keyword '${kw}'; it is not saved there`);
        refused.add(kw);
        return false;
      });
      const hash = matchingHash(headerBlockOf(wire));
      const size = lf.length - countCrlf(lf);
      // Without a given GUID the server's X-GUID or a header hash is used once the UID is known.
      batch.push({ wire, hash, wireSize: wire.length, size, guid: req.guid ?? '', uid, flags: [...req.flags], keywords, receivedDate: req.receivedDate });
      bytes += wire.length;
      if (batch.length >= BATCH_MESSAGES || bytes >= BATCH_BYTES) await sendBehind();
    }
    finished = true;
    await sendBehind();
    await sending;
  } finally {
    if (!finished) await source.return?.();
    // A failed read must not leave a batch half sent behind it, nor its failure unheard.
    await sending?.catch(() => {});
    ctx.pending.persist();
  }
  results.sort((a, b) => a.uid - b.uid);
  return results;
}
