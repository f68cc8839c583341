/**
 * MailStore over an IMAP account (imapflow), with a side index in the location's state
 * directory for what IMAP does not keep: modseqs that grow on every server, expunges with
 * their GUIDs, mailbox GUIDs and log, pair state, and the store's own UIDs mapped to the
 * server's (see imap-mailbox-sync.ts).
 */
import { Readable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import type { ImapLocation } from '../../config/imap-location.js';
import { existsError, usageError } from '../../model/errors.js';
import { matchingHash } from '../../model/header-hash.js';
import { canonicalName, isInbox } from '../../model/mailbox-name.js';
import { ChangeIndex, type IndexedMailbox, type MessageChange } from '../index/change-index.js';
import type { OpenStoreOptions } from '../open-store.js';
import {
  mailboxKey,
  sameMailbox,
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
} from '../store.js';
import type { ImapContext } from './imap-context.js';
import { readSecret } from './imap-credentials.js';
import { fetchMeta } from './imap-fetch.js';
import { fromLetters, keywordFilter, toLetters } from './imap-flags.js';
import { listServerMailboxes, reconcileMailboxList } from './imap-list.js';
import { indexedMailbox, isMissingError, missing, newGuid, refreshMailbox, select, serverUidOf } from './imap-mailbox-sync.js';
import { ImapNames } from './imap-names.js';
import { BodyReader } from './body-reader.js';
import { saveImapMessages } from './imap-save.js';
import { ImapSession, raw } from './imap-session.js';
import { PendingAppends } from './pending-appends.js';
import { chunkUids, formatUidSet } from './uid-set.js';

export interface ImapStoreOptions extends OpenStoreOptions {
  /** A command whose standard output is an OAuth2 access token (auth=xoauth2|oauthbearer). */
  oauth2TokenCmd?: string;
  warn?: (msg: string) => void;
  /** Reconnect attempts per operation (default 5). */
  retries?: number;
  /** Identify messages as on a server without X-GUID (tests of that rung; servers with a broken X-GUID). */
  ignoreXGuid?: boolean;
}

/**
 * Steps out of a mailbox before it is renamed or deleted. Never by CLOSE, which would expunge
 * every message flagged \Deleted; EXAMINE of INBOX leaves them alone.
 */
async function leave(client: ImapFlow, path: string): Promise<void> {
  if (client.mailbox && client.mailbox.path === path) await client.mailboxOpen('INBOX', { readOnly: true });
}

export class ImapStore implements MailStore {
  readonly location: string;
  readonly separator: string;
  readonly nativeGuids: boolean;
  /**
   * The server numbers its messages, and that is what its clients see: mailferry cannot give
   * them the other side's UIDs. So the engine matches by GUID alone and never renumbers,
   * merges UIDVALIDITYs or rebuilds an IMAP mailbox (which would delete and upload again every
   * message of a first sync whose two UIDVALIDITYs differ). The local UIDs still follow wanted
   * ones where free, so IMAP -> Maildir migrations keep the server's UIDs.
   */
  readonly assignsOwnUids = true;
  readonly ownsSpecialUseNames = true;
  private readonly ctx: ImapContext;
  private readonly bodies: BodyReader;

  private constructor(loc: ImapLocation, ctx: ImapContext) {
    this.location = loc.raw;
    this.ctx = ctx;
    this.separator = ctx.names.delimiter || '/';
    this.nativeGuids = ctx.session.xGuid;
    this.bodies = new BodyReader(ctx);
  }

  static async open(loc: ImapLocation, options: ImapStoreOptions = {}): Promise<ImapStore> {
    const warn = options.warn ?? ((msg: string) => process.stderr.write(`mailferry: warning: ${msg}\n`));
    const secret = await readSecret(loc, options);
    const session = new ImapSession(loc, secret, { ioTimeoutSeconds: options.ioTimeoutSeconds, retries: options.retries, ignoreXGuid: options.ignoreXGuid ?? loc.ignoreXGuid, stateDir: loc.stateDir, warn });
    const client = await session.run('', async (c) => c);
    const ns = client.namespace ?? { prefix: '', delimiter: '/' };
    const names = new ImapNames(ns.prefix ?? '', ns.delimiter ?? '/', session.account);
    let index: ChangeIndex;
    try {
      index = ChangeIndex.open(loc.stateDir);
    } catch (err) {
      await session.close();
      throw err;
    }
    return new ImapStore(loc, { session, index, names, pending: new PendingAppends(loc.stateDir), warn });
  }

  /** What the server offers after login, for diagnostics and tests. */
  capabilities(): Set<string> {
    return new Set([...this.ctx.session.capabilities()]);
  }

  private status(m: IndexedMailbox, specialUse: string[], subscribed: boolean): MailboxStatus {
    return {
      name: m.name,
      guid: m.guid,
      uidValidity: m.uidValidity,
      uidNext: m.uidNext,
      highestModseq: m.highestModseq,
      messages: m.messages,
      specialUse: specialUse.length > 0 ? specialUse : m.specialUse,
      subscribed,
    };
  }

  private subscribed(name: MailboxName): boolean {
    return this.ctx.index.knownSubscriptions().some((n) => sameMailbox(n, name));
  }

  async listMailboxes(): Promise<MailboxList> {
    const listed = await listServerMailboxes(this.ctx);
    reconcileMailboxList(this.ctx, listed);
    const mailboxes: MailboxStatus[] = [];
    for (const l of listed) {
      const { mailbox } = await refreshMailbox(this.ctx, l.name, { status: l.status });
      mailboxes.push(this.status(mailbox, l.specialUse ? [l.specialUse] : [], l.subscribed));
    }
    return { mailboxes, changes: this.ctx.index.mailboxLog(), separator: this.separator };
  }

  async mailboxStatus(name: MailboxName): Promise<MailboxStatus | undefined> {
    const canonical = canonicalName(name);
    try {
      const { mailbox } = await refreshMailbox(this.ctx, canonical);
      return this.status(mailbox, [], this.subscribed(canonical));
    } catch (err) {
      if ((err as { kind?: string }).kind === 'notfound') return undefined;
      throw err;
    }
  }

  async getMessages(name: MailboxName, sinceModseq?: number): Promise<MailboxChanges> {
    const { mailbox } = await refreshMailbox(this.ctx, canonicalName(name));
    const index = this.ctx.index;
    const toMeta = (m: { uid: number; guid: string; flagLetters: string; keywords: string[]; modseq: number; receivedDate: number; size: number }): MessageMeta => ({
      uid: m.uid, guid: m.guid, flags: fromLetters(m.flagLetters), keywords: [...m.keywords], modseq: m.modseq, receivedDate: m.receivedDate, size: m.size,
    });
    const base = { uidValidity: mailbox.uidValidity, uidNext: mailbox.uidNext, highestModseq: mailbox.highestModseq };
    const incremental = sinceModseq !== undefined && sinceModseq >= mailbox.firstModseq;
    if (!incremental) return { ...base, messages: index.messages(mailbox.id).map(toMeta), expunged: index.expungesSince(mailbox.id, 0), incremental: false };
    return { ...base, messages: index.messagesSince(mailbox.id, sinceModseq).map(toMeta), expunged: index.expungesSince(mailbox.id, sinceModseq), incremental: true };
  }

  async openMessage(name: MailboxName, uid: number): Promise<Readable> {
    return this.bodies.open(canonicalName(name), uid);
  }

  async messageHashes(name: MailboxName, uids: readonly number[]): Promise<Map<number, string>> {
    const { mailbox, path } = await refreshMailbox(this.ctx, canonicalName(name));
    const byServer = new Map<number, number>();
    for (const uid of uids) {
      const row = this.ctx.index.message(mailbox.id, uid);
      if (row) byServer.set(serverUidOf(row), uid);
    }
    const out = new Map<number, string>();
    if (byServer.size === 0) return out;
    await this.ctx.session.run(`mailbox '${path}'`, async (client) => {
      await select(this.ctx, client, name, path);
      for (const chunk of chunkUids([...byServer.keys()])) {
        for (const m of (await fetchMeta(client, formatUidSet(chunk), { xGuid: false, headers: true, condstore: false })).messages) {
          const uid = byServer.get(m.uid);
          if (uid !== undefined && m.header) out.set(uid, matchingHash(m.header));
        }
      }
    });
    return out;
  }

  async adoptGuids(name: MailboxName, guids: readonly { uid: number; guid: string }[]): Promise<void> {
    const { mailbox } = await refreshMailbox(this.ctx, canonicalName(name));
    const changes: MessageChange[] = [];
    for (const { uid, guid } of guids) {
      const row = this.ctx.index.message(mailbox.id, uid);
      if (row && row.guid !== guid) changes.push({ kind: 'add', message: { ...row, guid } });
    }
    if (changes.length > 0) this.ctx.index.applyChanges(mailbox.id, changes, { uidNext: mailbox.uidNext, fingerprint: mailbox.scanFingerprint });
  }

  async saveMessages(name: MailboxName, messages: Iterable<SaveRequest> | AsyncIterable<SaveRequest>): Promise<SavedMessage[]> {
    return saveImapMessages(this.ctx, canonicalName(name), messages);
  }

  async updateFlags(name: MailboxName, updates: readonly FlagUpdate[]): Promise<void> {
    const canonical = canonicalName(name);
    const { mailbox, path } = await refreshMailbox(this.ctx, canonical);
    const groups = new Map<string, { flags: string[]; letters: string; keywords: string[]; rows: { serverUid: number; uid: number }[] }>();
    let allow: (kw: string) => boolean = () => true;
    await this.ctx.session.run(`mailbox '${path}'`, async (client) => {
      allow = keywordFilter((await select(this.ctx, client, canonical, path)).permanentFlags);
    });
    for (const u of updates) {
      const row = this.ctx.index.message(mailbox.id, u.uid);
      if (!row) continue;
      const keywords = [...new Set(u.keywords)].filter((kw) => {
        if (allow(kw)) return true;
        this.ctx.warn(`${this.ctx.session.account}: mailbox '${path}' does not accept the keyword '${kw}'; it is not set there`);
        return false;
      }).sort();
      const letters = toLetters(u.flags);
      const key = `${letters}\n${keywords.join('\n')}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { flags: [...fromLetters(letters), ...keywords], letters, keywords, rows: [] }));
      g.rows.push({ serverUid: serverUidOf(row), uid: row.uid });
    }
    if (groups.size === 0) return;
    await this.ctx.session.run(`mailbox '${path}'`, async (client) => {
      await select(this.ctx, client, canonical, path);
      for (const g of groups.values()) {
        for (const chunk of chunkUids(g.rows.map((r) => r.serverUid))) {
          const flags = g.flags.map((f) => ({ type: 'ATOM', value: f }));
          const r = await raw(client).exec('UID STORE', [{ type: 'SEQUENCE', value: formatUidSet(chunk) }, { type: 'ATOM', value: 'FLAGS.SILENT' }, flags], {});
          r.next();
        }
      }
    });
    const changes: MessageChange[] = [];
    for (const g of groups.values()) {
      for (const r of g.rows) {
        const row = this.ctx.index.message(mailbox.id, r.uid)!;
        if (row.flagLetters !== g.letters || row.keywords.join('\n') !== g.keywords.join('\n')) {
          changes.push({ kind: 'update', message: { ...row, flagLetters: g.letters, keywords: g.keywords }, bumpModseq: true });
        }
      }
    }
    const now = this.ctx.index.mailboxByGuid(mailbox.guid)!;
    this.ctx.index.applyChanges(mailbox.id, changes, { uidNext: now.uidNext, fingerprint: now.scanFingerprint });
  }

  async expunge(name: MailboxName, uids: readonly number[]): Promise<void> {
    const canonical = canonicalName(name);
    const { mailbox, path } = await refreshMailbox(this.ctx, canonical);
    const rows = uids.map((u) => this.ctx.index.message(mailbox.id, u)).filter((r) => r !== undefined);
    if (rows.length === 0) return;
    await this.ctx.session.run(`mailbox '${path}'`, async (client) => {
      await select(this.ctx, client, canonical, path);
      for (const chunk of chunkUids(rows.map(serverUidOf))) await client.messageDelete(formatUidSet(chunk), { uid: true });
    });
    const now = this.ctx.index.mailboxByGuid(mailbox.guid)!;
    this.ctx.index.applyChanges(mailbox.id, rows.map((r) => ({ kind: 'expunge', uid: r.uid, guid: r.guid })), { uidNext: now.uidNext, fingerprint: now.scanFingerprint });
  }

  async createMailbox(name: MailboxName, options: CreateMailboxOptions = {}): Promise<MailboxStatus> {
    const canonical = canonicalName(name);
    const path = this.ctx.names.toPath(canonical);
    if (options.guid !== undefined && !/^[0-9a-f]{32}$/.test(options.guid)) throw usageError(`invalid mailbox GUID '${options.guid}' for '${path}': expected 32 hex digits`);
    if (options.guid && this.ctx.index.mailboxByGuid(options.guid) && !sameMailbox(this.ctx.index.mailboxByGuid(options.guid)!.name, canonical)) {
      throw existsError(`mailbox GUID ${options.guid} is already used in ${this.location}`);
    }
    if (isInbox(canonical)) throw existsError(`mailbox 'INBOX' already exists in ${this.location}`);
    const created = await this.ctx.session.run(`mailbox '${path}'`, async (client) => {
      try {
        const made = await client.mailboxCreate(path);
        // imapflow subscribes what it creates; a new mailbox here is unsubscribed, as in every
        // store, and the engine subscribes it when the other side says so.
        if (made.created) await client.mailboxUnsubscribe(path);
        return made;
      } catch (err) {
        if ((err as { serverResponseCode?: string }).serverResponseCode === 'ALREADYEXISTS') return { created: false };
        throw err;
      }
    });
    if (!created.created) throw existsError(`mailbox '${path}' already exists in ${this.location}`);
    const ts = Math.floor(Date.now() / 1000);
    const stale = indexedMailbox(this.ctx, canonical);
    if (stale) {
      this.ctx.index.logMailboxChange({ type: 'delete', guid: stale.guid, name: stale.name, timestamp: ts });
      this.ctx.index.removeMailbox(stale.id);
    }
    const guid = options.guid ?? newGuid();
    const st = await this.ctx.session.run(`mailbox '${path}'`, (client) => client.status(path, { uidValidity: true, uidNext: true }));
    const row = this.ctx.index.addMailbox(guid, canonical, options.uidValidity ?? (Number(st && st.uidValidity) || ts));
    this.ctx.index.applyChanges(row.id, [], { uidNext: (st && st.uidNext) || 1, fingerprint: null });
    if (options.specialUse?.length) this.ctx.index.setSpecialUse(row.id, options.specialUse);
    this.ctx.index.logMailboxChange({ type: 'create', guid, name: canonical, timestamp: ts });
    const { mailbox } = await refreshMailbox(this.ctx, canonical);
    return this.status(mailbox, [], false);
  }

  async renameMailbox(from: MailboxName, to: MailboxName): Promise<void> {
    const src = canonicalName(from);
    const dst = canonicalName(to);
    if (isInbox(src)) throw usageError(`renaming INBOX is not supported in ${this.location}`);
    // Known to the index first, so the GUIDs follow the move.
    await this.listMailboxes();
    if (!indexedMailbox(this.ctx, src)) throw missing(this.ctx, src);
    if (indexedMailbox(this.ctx, dst) || isInbox(dst)) throw existsError(`mailbox '${this.ctx.names.toPath(dst)}' already exists in ${this.location}`);
    const fromPath = this.ctx.names.toPath(src);
    const toPath = this.ctx.names.toPath(dst);
    await this.ctx.session.run(`mailbox '${fromPath}'`, async (client) => {
      await leave(client, fromPath);
      await client.mailboxRename(fromPath, toPath);
    });
    const ts = Math.floor(Date.now() / 1000);
    for (const m of this.ctx.index.listMailboxes()) {
      if (m.name.length < src.length || !sameMailbox(m.name.slice(0, src.length), src)) continue;
      const name = [...dst, ...m.name.slice(src.length)];
      this.ctx.index.renameMailbox(m.id, name);
      this.ctx.index.logMailboxChange({ type: 'rename', guid: m.guid, name, oldName: m.name, timestamp: ts });
    }
    const subs = this.ctx.index.knownSubscriptions();
    if (subs.some((n) => n.length >= src.length && sameMailbox(n.slice(0, src.length), src))) {
      this.ctx.index.setKnownSubscriptions(subs.map((n) => (n.length >= src.length && sameMailbox(n.slice(0, src.length), src) ? [...dst, ...n.slice(src.length)] : n)));
    }
  }

  async deleteMailbox(name: MailboxName): Promise<void> {
    const canonical = canonicalName(name);
    if (isInbox(canonical)) throw usageError(`INBOX cannot be deleted in ${this.location}`);
    const path = this.ctx.names.toPath(canonical);
    const known = indexedMailbox(this.ctx, canonical) ?? (await refreshMailbox(this.ctx, canonical)).mailbox;
    await this.ctx.session.run(`mailbox '${path}'`, async (client) => {
      await leave(client, path);
      try {
        await client.mailboxDelete(path);
      } catch (err) {
        if (isMissingError(err)) throw missing(this.ctx, canonical);
        throw err;
      }
    });
    this.ctx.index.logMailboxChange({ type: 'delete', guid: known.guid, name: canonical, timestamp: Math.floor(Date.now() / 1000) });
    this.ctx.index.removeMailbox(known.id);
  }

  async updateMailbox(name: MailboxName, update: MailboxUpdate): Promise<MailboxStatus> {
    const canonical = canonicalName(name);
    let { mailbox } = await refreshMailbox(this.ctx, canonical);
    const index = this.ctx.index;
    if (update.guid !== undefined && !/^[0-9a-f]{32}$/.test(update.guid)) throw usageError(`invalid mailbox GUID '${update.guid}': expected 32 hex digits`);
    if (update.guid !== undefined && update.guid !== mailbox.guid) {
      if (index.mailboxByGuid(update.guid)) throw existsError(`mailbox GUID ${update.guid} is already used in ${this.location}`);
      index.setGuid(mailbox.id, update.guid);
    }
    const fp = mailbox.scanFingerprint;
    let uidNext = mailbox.uidNext;
    if ((update.uidValidity !== undefined && update.uidValidity !== mailbox.uidValidity) || update.restartUids) {
      const empty = mailbox.messages === 0;
      index.resetMailbox(mailbox.id, update.uidValidity ?? mailbox.uidValidity + 1);
      // Messages still on the server are found again by a full scan; an empty one needs none.
      index.applyChanges(mailbox.id, [], { uidNext: update.restartUids ? 1 : uidNext, fingerprint: empty ? fp : null });
      uidNext = update.restartUids ? 1 : uidNext;
    }
    if (update.minUidNext !== undefined && update.minUidNext > uidNext) {
      const now = index.mailboxByGuid(update.guid ?? mailbox.guid)!;
      index.applyChanges(mailbox.id, [], { uidNext: update.minUidNext, fingerprint: now.scanFingerprint });
    }
    mailbox = (await refreshMailbox(this.ctx, canonical)).mailbox;
    return this.status(mailbox, [], this.subscribed(canonical));
  }

  async setSubscribed(name: MailboxName, subscribed: boolean): Promise<void> {
    const canonical = canonicalName(name);
    const path = this.ctx.names.toPath(canonical);
    await this.ctx.session.run(`mailbox '${path}'`, (client) => (subscribed ? client.mailboxSubscribe(path) : client.mailboxUnsubscribe(path)));
    const names = this.ctx.index.knownSubscriptions();
    const has = names.some((n) => sameMailbox(n, canonical));
    if (has === subscribed) return;
    this.ctx.index.setKnownSubscriptions(subscribed ? [...names, canonical] : names.filter((n) => mailboxKey(n) !== mailboxKey(canonical)));
    this.ctx.index.logMailboxChange({ type: subscribed ? 'subscribe' : 'unsubscribe', name: canonical, timestamp: Math.floor(Date.now() / 1000) });
  }

  get storeId(): string {
    return this.ctx.index.storeId();
  }

  async getPairState(peerId: string): Promise<PairState> {
    return this.ctx.index.pairState(peerId) as PairState;
  }

  async setPairState(peerId: string, state: PairState): Promise<void> {
    this.ctx.index.setPairState(peerId, state);
  }

  async close(): Promise<void> {
    await this.ctx.session.close();
    this.ctx.index.close();
  }
}
