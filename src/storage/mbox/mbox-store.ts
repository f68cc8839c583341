/**
 * The mbox store: a Dovecot mbox root (one file per mailbox, INBOX its own file), read and
 * written as Dovecot does, with mailferry's change index in a hidden directory beside it for
 * modseqs, expunges with GUIDs, the mailbox log and the GUIDs mbox itself cannot hold.
 *
 * Messages are served as Dovecot serves them: without the metadata headers (X-IMAPbase, X-IMAP,
 * X-UID, Status, X-Status, X-Keywords, Content-Length) and without mailferry's own hidden
 * headers, with escaped header lines restored; see mbox-headers.ts and mbox-scan.ts.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import type { MboxLocation } from '../../config/location.js';
import { dataError, existsError, fsError, MailferryError, notFoundError, usageError } from '../../model/errors.js';
import { hashesByReading } from '../message-hashes.js';
import { entryKind } from '../safe-fs.js';
import { canonicalName, isInbox } from '../../model/mailbox-name.js';
import { ChangeIndex, type IndexedMailbox } from '../index/change-index.js';
import { guessSpecialUse } from '../maildir/special-use.js';
import { nextUidValidity } from '../maildir/uidvalidity.js';
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
  type PairState,
  type SavedMessage,
  type SaveRequest,
} from '../store.js';
import { fileFingerprint, indexedMailboxByName, newMailboxGuid, type MboxContext, type ScanRecord } from './mbox-index-sync.js';
import { MBOX_SEPARATOR, MboxLayout, type MailboxEntry } from './mbox-layout.js';
import { createMailboxFile, expungeFromMailbox, refreshMailbox, saveToMailbox, updateMailboxFlags, updateMailboxHeader } from './mbox-mailbox.js';
import { readMboxSubscriptions, writeMboxSubscriptions } from './mbox-subscriptions.js';
import { openStoredMessage } from './stored-message-reader.js';
import { peekUidValidity } from './peek-uid-validity.js';
import { decodeLocation, indexLettersToFlags } from './message-location.js';
import { foreignDestinationEntry } from './foreign-destination-entry.js';
import { mboxNameProblem } from './mailbox-name-problem.js';
import { startsAsMbox } from './mbox-file-start.js';
import { isOwnEntry } from './mbox-own-files.js';

export interface MboxStoreOptions {
  fsync?: boolean;
  /** Seconds to wait for an mbox dotlock (default 30). */
  lockTimeoutSeconds?: number;
  warn?: (msg: string) => void;
  create?: boolean;
  /**
   * Open a destination (`create`) that is neither empty nor an mbox tree (`--force`). Without
   * it such a directory is refused, so a typo cannot turn a home directory into a mail tree.
   */
  force?: boolean;
}

export class MboxStore implements MailStore {
  readonly location: string;
  readonly separator = MBOX_SEPARATOR;
  /** mbox has no message GUIDs; they are header hashes or kept in the change index. */
  readonly nativeGuids = false;
  readonly layout: MboxLayout;
  private readonly loc: MboxLocation;
  private readonly index: ChangeIndex;
  private readonly fsync: boolean;
  private readonly lockTimeoutSeconds: number;
  private readonly warn: (msg: string) => void;
  /**
   * File fingerprint and mailbox id of each mbox as this store last scanned it. Copying a mailbox
   * opens every message in turn, right after the file was written (so its mtime is too fresh
   * for the two-second rule): an unchanged fingerprint is trusted for reading messages, whose
   * From line and header hash are checked anyway.
   */
  private readonly recentlyScanned = new Map<string, { fp: string; id: number }>();
  private readonly scans = new Map<string, ScanRecord>();
  private readonly pausedWrites = new Set<string>();

  private constructor(loc: MboxLocation, index: ChangeIndex, options: MboxStoreOptions) {
    this.location = loc.raw;
    this.loc = loc;
    this.layout = new MboxLayout(loc);
    this.index = index;
    this.fsync = options.fsync ?? true;
    this.lockTimeoutSeconds = options.lockTimeoutSeconds ?? 30;
    this.warn = options.warn ?? ((msg) => process.stderr.write(`mailferry: warning: ${msg}\n`));
  }

  /**
   * Opens an existing mbox root, or with `create` a destination: the directory is made when
   * missing, and refused when it holds entries but no mbox file (unless `force`).
   */
  static open(loc: MboxLocation, options: MboxStoreOptions = {}): MboxStore {
    const existed = existsSync(loc.root);
    if (options.create && !existed) {
      try {
        mkdirSync(loc.root, { recursive: true });
      } catch (err) {
        throw fsError(err, `mbox root ${loc.root}`);
      }
    }
    let st;
    try {
      st = statSync(loc.root);
    } catch (err) {
      throw fsError(err, `mbox root ${loc.root}`);
    }
    if (!st.isDirectory()) throw usageError(`mbox root ${loc.root} is not a directory`);
    if (options.create && existed && !options.force) {
      const foreign = foreignDestinationEntry(loc.root, loc.inbox);
      if (foreign !== undefined) {
        throw dataError(
          `${loc.root} is neither empty nor an mbox tree (it holds ${foreign}, and no mbox file); ` +
            'refusing to use it as a destination (--force uses it anyway, leaving its other files alone)',
        );
      }
    }
    return new MboxStore(loc, ChangeIndex.open(loc.indexDir, { fsync: options.fsync }), options);
  }

  private ctx(name: MailboxName): MboxContext {
    return {
      path: this.layout.pathOf(name),
      name: canonicalName(name),
      index: this.index,
      indexDir: this.loc.indexDir,
      lockTimeoutSeconds: this.lockTimeoutSeconds,
      fsync: this.fsync,
      warn: this.warn,
      scans: this.scans,
      pausedWrites: this.pausedWrites,
    };
  }

  /**
   * What is at a mailbox's path; a link or FIFO on the way is refused. INBOX is always a
   * mailbox (a missing one is empty); a non-mbox INBOX is reported by its scan, naming the offset.
   */
  private entry(name: MailboxName): { path: string; entry: MailboxEntry } {
    const canonical = canonicalName(name);
    const inbox = isInbox(canonical);
    const found = this.layout.entryOf(canonical, inbox || indexedMailboxByName(this.index, canonical) !== undefined);
    return inbox && found.entry === 'missing' ? { ...found, entry: 'mailbox' } : found;
  }

  private exists(name: MailboxName): boolean {
    return this.entry(name).entry === 'mailbox';
  }

  private async open(name: MailboxName): Promise<{ ctx: MboxContext; mailbox: IndexedMailbox }> {
    const canonical = canonicalName(name);
    const { path, entry } = this.entry(canonical);
    if (entry === 'foreign') throw this.layout.foreignError(path);
    if (entry !== 'mailbox') throw notFoundError(`mailbox '${this.layout.formatName(canonical)}' does not exist in ${this.location}`);
    const ctx = this.ctx(canonical);
    const mailbox = await refreshMailbox(ctx);
    this.recentlyScanned.set(ctx.path, { fp: fileFingerprint(ctx.path).value, id: mailbox.id });
    return { ctx, mailbox };
  }

  /** The mailbox id for reading messages: from the last scan when the file is unchanged since. */
  private async readable(name: MailboxName, trustRecent: boolean): Promise<{ path: string; id: number }> {
    const canonical = canonicalName(name);
    const path = this.layout.pathOf(canonical);
    const known = this.recentlyScanned.get(path);
    if (trustRecent && known && known.fp === fileFingerprint(path).value) return { path, id: known.id };
    const { ctx, mailbox } = await this.open(canonical);
    return { path: ctx.path, id: mailbox.id };
  }

  private status(mailbox: IndexedMailbox, subscribed: Set<string>): MailboxStatus {
    return {
      name: mailbox.name,
      guid: mailbox.guid,
      uidValidity: mailbox.uidValidity,
      uidNext: mailbox.uidNext,
      highestModseq: mailbox.highestModseq,
      messages: mailbox.messages,
      specialUse: mailbox.specialUse.length > 0 ? mailbox.specialUse : guessSpecialUse(mailbox.name),
      subscribed: subscribed.has(mailboxKey(mailbox.name)),
    };
  }

  /** Reads `.subscriptions`, logging (un)subscriptions other programs made since we last looked. */
  private currentSubscriptions(): MailboxName[] {
    const names = readMboxSubscriptions(this.loc.root, this.warn);
    this.index.noteSubscriptions(names);
    return names;
  }

  private subscribedSet(): Set<string> {
    return new Set(this.currentSubscriptions().map(mailboxKey));
  }

  async listMailboxes(): Promise<MailboxList> {
    const before = new Map(this.index.listMailboxes().map((m) => [mailboxKey(m.name), m]));
    const names: MailboxName[] = [['INBOX'], ...this.layout.listMailboxFiles(this.warn, (n) => before.has(mailboxKey(n))).map((f) => f.name)];
    const present = new Set(names.map(mailboxKey));
    const vanished = [...before.values()].filter((m) => !present.has(mailboxKey(m.name)));
    const ts = Math.floor(Date.now() / 1000);
    const scanned: IndexedMailbox[] = [];
    const seen = new Set<string>();
    for (const name of names) {
      const ctx = this.ctx(name);
      const known = before.get(mailboxKey(name));
      if (!known && vanished.length > 0) {
        // A file renamed by another program (or by Dovecot's RENAME) keeps its X-IMAPbase
        // UIDVALIDITY: one vanished mailbox with the same one is that mailbox, renamed.
        const uidValidity = peekUidValidity(ctx.path);
        const same = vanished.filter((v) => v.uidValidity === uidValidity);
        if (uidValidity !== undefined && same.length === 1) {
          const moved = same[0]!;
          vanished.splice(vanished.indexOf(moved), 1);
          this.index.renameMailbox(moved.id, canonicalName(name));
          this.index.invalidateScan(moved.id);
          this.index.logMailboxChange({ type: 'rename', guid: moved.guid, name: canonicalName(name), oldName: moved.name, timestamp: ts });
          before.set(mailboxKey(name), moved);
        }
      }
      const mailbox = await refreshMailbox(ctx);
      if (before.get(mailboxKey(name))?.guid !== mailbox.guid) {
        this.index.logMailboxChange({ type: 'create', guid: mailbox.guid, name, timestamp: ts });
      }
      seen.add(mailbox.guid);
      scanned.push(mailbox);
    }
    for (const m of this.index.listMailboxes()) {
      if (seen.has(m.guid)) continue;
      this.index.logMailboxChange({ type: 'delete', guid: m.guid, name: m.name, timestamp: ts });
      this.index.removeMailbox(m.id);
    }
    const subscribed = this.subscribedSet();
    return { mailboxes: scanned.map((m) => this.status(m, subscribed)), changes: this.index.mailboxLog(), separator: this.separator };
  }

  async mailboxStatus(name: MailboxName): Promise<MailboxStatus | undefined> {
    let entry: MailboxEntry;
    try {
      entry = this.entry(name).entry;
    } catch (err) {
      // A name the layout cannot spell is no mailbox; a link or FIFO at the name is refused.
      if (err instanceof MailferryError && err.kind === 'usage') return undefined;
      throw err;
    }
    if (entry === 'missing' || entry === 'directory') return undefined;
    const { mailbox } = await this.open(name);
    return this.status(mailbox, this.subscribedSet());
  }

  async getMessages(name: MailboxName, sinceModseq?: number): Promise<MailboxChanges> {
    const { mailbox } = await this.open(name);
    const incremental = sinceModseq !== undefined && sinceModseq >= mailbox.firstModseq;
    const base = { uidValidity: mailbox.uidValidity, uidNext: mailbox.uidNext, highestModseq: mailbox.highestModseq };
    const toMeta = (m: ReturnType<ChangeIndex['messages']>[number]) => ({
      uid: m.uid,
      guid: m.guid,
      flags: indexLettersToFlags(m.flagLetters),
      keywords: [...m.keywords],
      modseq: m.modseq,
      receivedDate: m.receivedDate,
      size: m.size,
    });
    if (!incremental) {
      return { ...base, messages: this.index.messages(mailbox.id).map(toMeta), expunged: this.index.expungesSince(mailbox.id, 0), incremental: false };
    }
    return {
      ...base,
      messages: this.index.messagesSince(mailbox.id, sinceModseq).map(toMeta),
      expunged: this.index.expungesSince(mailbox.id, sinceModseq),
      incremental: true,
    };
  }

  async openMessage(name: MailboxName, uid: number): Promise<Readable> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const { path, id } = await this.readable(name, attempt === 0);
      const row = this.index.message(id, uid);
      const loc = row && decodeLocation(row.file);
      // A row an earlier version recorded with `>From` unquoting has a stale size: scanned again.
      if (row && loc && !loc.unquote) {
        const stream = openStoredMessage(path, loc, row.size);
        if (stream) return stream;
      }
      // Not there, or the file changed under the index (another writer): scan again and retry.
      this.index.invalidateScan(id);
      this.recentlyScanned.delete(path);
      this.scans.delete(path);
    }
    throw notFoundError(`mailbox '${this.layout.formatName(canonicalName(name))}' has no message with UID ${uid}`);
  }

  async messageHashes(name: MailboxName, uids: readonly number[]): Promise<Map<number, string>> {
    // A location keeps the v3 header hash, which names the message at that place; pairing with
    // another store's copy needs the matching hash, which only the header itself gives.
    return hashesByReading(this, name, uids);
  }

  async adoptGuids(name: MailboxName, guids: readonly { uid: number; guid: string }[]): Promise<void> {
    const { mailbox } = await this.open(name);
    const changes = [];
    for (const { uid, guid } of guids) {
      const row = this.index.message(mailbox.id, uid);
      if (row && row.guid !== guid) changes.push({ kind: 'add' as const, message: { ...row, guid } });
    }
    if (changes.length) this.index.applyChanges(mailbox.id, changes, { uidNext: mailbox.uidNext, fingerprint: mailbox.scanFingerprint });
  }

  async saveMessages(name: MailboxName, messages: Iterable<SaveRequest> | AsyncIterable<SaveRequest>): Promise<SavedMessage[]> {
    const { ctx } = await this.open(name);
    this.layout.makeParents(ctx.path);
    return saveToMailbox(ctx, messages);
  }

  async updateFlags(name: MailboxName, updates: readonly FlagUpdate[]): Promise<void> {
    const { ctx } = await this.open(name);
    await updateMailboxFlags(ctx, updates);
  }

  async expunge(name: MailboxName, uids: readonly number[]): Promise<void> {
    const { ctx } = await this.open(name);
    await expungeFromMailbox(ctx, uids);
  }

  async createMailbox(name: MailboxName, options: CreateMailboxOptions = {}): Promise<MailboxStatus> {
    const canonical = canonicalName(name);
    const shown = this.layout.formatName(canonical);
    const { entry } = this.entry(canonical);
    if (entry === 'mailbox') throw existsError(`mailbox '${shown}' already exists in ${this.location}`);
    if (options.guid !== undefined && !/^[0-9a-f]{32}$/.test(options.guid)) {
      throw usageError(`invalid mailbox GUID '${options.guid}' for '${shown}': expected 32 hex digits`);
    }
    const guid = options.guid ?? newMailboxGuid();
    if (this.index.mailboxByGuid(guid)) throw existsError(`mailbox GUID ${guid} is already used in ${this.location}`);
    const ctx = this.ctx(canonical);
    if (entry !== 'missing') throw existsError(`cannot create '${shown}' in ${this.location}: ${ctx.path} exists and is not an mbox file`);
    this.layout.makeParents(ctx.path);
    const stale = indexedMailboxByName(this.index, canonical);
    if (stale) this.index.removeMailbox(stale.id);
    const uidValidity = options.uidValidity ?? nextUidValidity(this.loc.indexDir);
    await createMailboxFile(ctx, uidValidity);
    const mailbox = this.index.addMailbox(guid, canonical, uidValidity);
    if (options.specialUse?.length) this.index.setSpecialUse(mailbox.id, options.specialUse);
    this.index.logMailboxChange({ type: 'create', guid, name: canonical, timestamp: Math.floor(Date.now() / 1000) });
    return this.status(await refreshMailbox(ctx), this.subscribedSet());
  }

  async renameMailbox(from: MailboxName, to: MailboxName): Promise<void> {
    const src = canonicalName(from);
    const dst = canonicalName(to);
    if (isInbox(src)) throw usageError(`renaming INBOX is not supported in ${this.location}`);
    const { ctx, mailbox } = await this.open(src);
    const { path: dstPath, entry } = this.layout.entryOf(dst, false);
    if (isInbox(dst) || entry !== 'missing') throw existsError(`mailbox '${this.layout.formatName(dst)}' already exists in ${this.location}`);
    this.layout.makeParents(dstPath);
    try {
      // rename(2) replaces the last component itself and never follows a link there.
      renameSync(ctx.path, dstPath);
    } catch (err) {
      throw fsError(err, `renaming ${ctx.path} to ${dstPath}`);
    }
    this.index.renameMailbox(mailbox.id, dst);
    this.index.invalidateScan(mailbox.id);
    this.index.logMailboxChange({ type: 'rename', guid: mailbox.guid, name: dst, oldName: src, timestamp: Math.floor(Date.now() / 1000) });
  }

  async deleteMailbox(name: MailboxName): Promise<void> {
    const canonical = canonicalName(name);
    if (isInbox(canonical)) throw usageError(`INBOX cannot be deleted in ${this.location}`);
    const { ctx, mailbox } = await this.open(canonical);
    try {
      unlinkSync(ctx.path);
    } catch (err) {
      throw fsError(err, `deleting mailbox ${ctx.path}`);
    }
    this.index.logMailboxChange({ type: 'delete', guid: mailbox.guid, name: canonical, timestamp: Math.floor(Date.now() / 1000) });
    this.index.removeMailbox(mailbox.id);
    this.removeEmptyParents(ctx.path);
  }

  /**
   * Removes the directories a deleted mailbox leaves empty (Dovecot would list them as
   * mailboxes that cannot hold mail). One that still holds files that are not mail is left,
   * with a warning naming one: it was never only ours.
   */
  private removeEmptyParents(path: string): void {
    for (let dir = dirname(path); relative(this.loc.root, dir) !== '' && !relative(this.loc.root, dir).startsWith('..'); dir = dirname(dir)) {
      let entries: string[];
      try {
        entries = readdirSync(dir);
      } catch {
        return;
      }
      if (entries.length > 0) {
        const foreign = entries.find((e) => !isOwnEntry(e) && this.isForeignFile(join(dir, e)));
        if (foreign !== undefined && entries.every((e) => isOwnEntry(e) || this.isForeignFile(join(dir, e)))) {
          this.warn(`${dir} is left in place: it holds ${join(dir, foreign)}, which is not mail`);
        }
        return;
      }
      try {
        rmdirSync(dir);
      } catch {
        return;
      }
    }
  }

  /** A file, link or special file that is not an mbox; directories are mail folders' parents. */
  private isForeignFile(path: string): boolean {
    const kind = entryKind(path);
    if (kind === 'directory' || kind === 'missing') return false;
    if (kind !== 'file') return true;
    try {
      return !startsAsMbox(path);
    } catch {
      return true;
    }
  }

  mailboxNameProblem(name: MailboxName, shape: { hasChildren: boolean; messages: number }): string | undefined {
    const canonical = canonicalName(name);
    return mboxNameProblem(canonical, this.layout.formatName(canonical), shape);
  }

  async updateMailbox(name: MailboxName, update: MailboxUpdate): Promise<MailboxStatus> {
    const { ctx, mailbox } = await this.open(name);
    if (update.guid !== undefined && !/^[0-9a-f]{32}$/.test(update.guid)) throw usageError(`invalid mailbox GUID '${update.guid}': expected 32 hex digits`);
    if (update.guid !== undefined && update.guid !== mailbox.guid) {
      if (this.index.mailboxByGuid(update.guid)) throw existsError(`mailbox GUID ${update.guid} is already used in ${this.location}`);
      this.index.setGuid(mailbox.id, update.guid);
    }
    if (update.uidValidity !== undefined || update.minUidNext !== undefined || update.restartUids) {
      if (update.uidValidity !== mailbox.uidValidity || (update.minUidNext ?? 0) > mailbox.uidNext || update.restartUids) {
        await updateMailboxHeader(ctx, update);
      }
    }
    return this.status(await refreshMailbox(ctx), this.subscribedSet());
  }

  async setSubscribed(name: MailboxName, subscribed: boolean): Promise<void> {
    const canonical = canonicalName(name);
    const names = this.currentSubscriptions();
    const has = names.some((n) => sameMailbox(n, canonical));
    if (has === subscribed) return;
    const next = subscribed ? [...names, canonical] : names.filter((n) => !sameMailbox(n, canonical));
    await writeMboxSubscriptions(this.loc.root, next, { timeoutSeconds: this.lockTimeoutSeconds, fsync: this.fsync });
    this.index.setKnownSubscriptions(next);
    this.index.logMailboxChange({ type: subscribed ? 'subscribe' : 'unsubscribe', name: canonical, timestamp: Math.floor(Date.now() / 1000) });
  }

  get storeId(): string {
    return this.index.storeId();
  }

  async getPairState(peerId: string): Promise<PairState> {
    return this.index.pairState(peerId) as PairState;
  }

  async setPairState(peerId: string, state: PairState): Promise<void> {
    this.index.setPairState(peerId, state);
  }

  async close(): Promise<void> {
    this.index.close();
  }
}

