/**
 * The Maildir store: Dovecot's Maildir, read and written as Dovecot does, with mailferry's
 * change index beside it for modseqs and expunge history.
 */
import { existsSync, mkdirSync, readdirSync, realpathSync, renameSync, rmdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import type { MaildirLocation } from '../../config/location.js';
import { dataError, existsError, fsError, MailferryError, notFoundError, usageError } from '../../model/errors.js';
import { failpoint } from '../../model/failpoint.js';
import { ChangeIndex, type IndexedMailbox, type IndexedMessage } from '../index/change-index.js';
import {
  mailboxKey,
  sameMailbox,
  SYSTEM_FLAGS,
  type CreateMailboxOptions,
  type FlagUpdate,
  type MailboxChanges,
  type MessagesOf,
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
  type SystemFlag,
} from '../store.js';
import { hashesByReading } from '../message-hashes.js';
import { entryKind, openFile, readFileSafe } from '../safe-fs.js';
import { deleteMailboxDir, removeMailboxFiles, type RemovedMailbox } from './mailbox-delete.js';
import { foreignEntryOf } from './foreign-root.js';
import { Dotlock } from './dotlock.js';
import { FLAG_LETTERS } from './filename.js';
import { NO_KEYWORDS } from './index-row.js';
import { flagChangeTimes } from './flag-change-times.js';
import { canonicalName, isInbox, isMaildir, MaildirLayout } from './layout.js';
import { ensureMaildirDirs, fingerprint, readUidlistGuid, requireMaildir, UIDLIST_FILENAME } from './mailbox-files.js';
import { newMailboxGuid, scanMailbox, skippedEntries, type ScanContext } from './mailbox-scan.js';
import { expungeMessages, saveMessages, updateFlags, updateUidlistHeader } from './mailbox-writer.js';
import { formatUidlist, nextUidOf } from './uidlist.js';
import { nextUidValidity } from './uidvalidity.js';
import { readSubscriptions, writeSubscriptions } from './subscriptions.js';
import { guessSpecialUse } from './special-use.js';

export interface MaildirStoreOptions {
  /** fsync mail files and directories before reporting a save done (default true). */
  fsync?: boolean;
  /** Seconds to wait for Dovecot's uidlist lock (default 30). */
  lockTimeoutSeconds?: number;
  warn?: (msg: string) => void;
  /**
   * Open a destination that is neither empty nor a mail store of this kind (`--force`). Without
   * it such a directory is refused, so a typo cannot turn a home directory into a Maildir.
   */
  force?: boolean;
}

/** Messages up to this size are read in one piece; larger ones are streamed. */
const SMALL_MESSAGE_BYTES = 1024 * 1024;

const LETTER_TO_FLAG = new Map<string, SystemFlag>(
  (Object.entries(FLAG_LETTERS) as [SystemFlag, string][]).map(([flag, letter]) => [letter, flag]),
);

/**
 * A mailbox has a handful of distinct flag sets: each is built once and shared, frozen, by every
 * listed message that has it (a listing of a million messages otherwise held a million arrays).
 */
const flagSets = new Map<string, SystemFlag[]>();

function flagsOf(letters: string): SystemFlag[] {
  let flags = flagSets.get(letters);
  if (!flags) {
    flags = [...letters].map((c) => LETTER_TO_FLAG.get(c)).filter((f): f is SystemFlag => f !== undefined);
    flags.sort((a, b) => SYSTEM_FLAGS.indexOf(a) - SYSTEM_FLAGS.indexOf(b));
    Object.freeze(flags);
    // Letters come from file names: a hostile mailbox could hold many distinct strings.
    if (flagSets.size < 1024) flagSets.set(letters, flags);
  }
  return flags;
}

function toMeta(m: IndexedMessage): MessageMeta {
  const keywords = m.keywords.length === 0 ? NO_KEYWORDS : [...m.keywords];
  return { uid: m.uid, guid: m.guid, flags: flagsOf(m.flagLetters), keywords, modseq: m.modseq, receivedDate: m.receivedDate, size: m.size };
}

export class MaildirStore implements MailStore {
  readonly location: string;
  readonly separator: string;
  /** Maildir basenames are GUIDs every Dovecot keeps. */
  readonly nativeGuids = true;
  readonly layout: MaildirLayout;
  private readonly loc: MaildirLocation;
  private readonly index: ChangeIndex;
  private readonly fsync: boolean;
  private readonly lockTimeoutSeconds: number;
  private readonly warn: (msg: string) => void;
  private readonly recentlyScanned = new Map<string, { dir: string; id: number }>();
  private readonly scannedThisSession = new Map<string, string>();

  private constructor(loc: MaildirLocation, index: ChangeIndex, options: MaildirStoreOptions) {
    this.location = loc.raw;
    this.loc = loc;
    this.layout = new MaildirLayout(loc);
    this.separator = this.layout.separator;
    this.index = index;
    this.fsync = options.fsync ?? true;
    this.lockTimeoutSeconds = options.lockTimeoutSeconds ?? 30;
    this.warn = options.warn ?? ((msg) => process.stderr.write(`mailferry: warning: ${msg}\n`));
  }

  /** Opens an existing Maildir (or creates it when `create` is set). */
  static open(loc: MaildirLocation, options: MaildirStoreOptions & { create?: boolean } = {}): MaildirStore {
    if (options.create && !existsSync(loc.root)) {
      try {
        mkdirSync(loc.root, { recursive: true });
      } catch (err) {
        throw fsError(err, `Maildir ${loc.root}`);
      }
    }
    requireMaildir(loc.root, `Maildir ${loc.root}`);
    // The root itself may be a link (~/Maildir -> /srv/mail/alice); nothing inside it may.
    const real = realpathSync(loc.root);
    loc = { ...loc, root: real, inbox: loc.inbox === loc.root ? real : loc.inbox, indexDir: loc.indexDir === loc.root ? real : loc.indexDir };
    if (!options.force) {
      const foreign = foreignEntryOf(loc);
      if (foreign !== undefined) {
        throw dataError(
          `${loc.root} is not empty and is not a Maildir (it holds ${JSON.stringify(foreign)}); name the Maildir itself (often ~/Maildir), or pass --force to use this directory anyway`,
        );
      }
    }
    const store = new MaildirStore(loc, ChangeIndex.open(loc.indexDir, { fsync: options.fsync }), options);
    ensureMaildirDirs(loc.inbox, true);
    return store;
  }

  private ctx(name: MailboxName, dir: string): ScanContext {
    return {
      root: this.loc.root,
      dir,
      name,
      index: this.index,
      lockTimeoutSeconds: this.lockTimeoutSeconds,
      fsync: this.fsync,
      warn: this.warn,
      scannedThisSession: this.scannedThisSession,
    };
  }

  private existingDir(name: MailboxName): string | undefined {
    const dir = this.layout.dirOf(name);
    if (isInbox(canonicalName(name))) return dir;
    return isMaildir(dir) ? dir : undefined;
  }

  /** Scans a mailbox that must exist; the error names it otherwise. */
  private async open(name: MailboxName): Promise<{ ctx: ScanContext; mailbox: IndexedMailbox }> {
    const canonical = canonicalName(name);
    const dir = this.existingDir(canonical);
    if (!dir) throw notFoundError(`mailbox '${this.layout.formatName(canonical)}' does not exist in ${this.location}`);
    const ctx = this.ctx(canonical, dir);
    ensureMaildirDirs(dir, isInbox(canonical));
    const mailbox = await scanMailbox(ctx);
    this.recentlyScanned.set(mailboxKey(canonical), { dir, id: mailbox.id });
    return { ctx, mailbox };
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

  private subscribedSet(): Set<string> {
    return new Set(this.currentSubscriptions().map(mailboxKey));
  }

  /** Reads `subscriptions`, logging (un)subscriptions other programs made since we last looked. */
  private currentSubscriptions(): MailboxName[] {
    const names = readSubscriptions(this.loc.root, this.layout.separator, this.warn);
    this.index.noteSubscriptions(names);
    return names;
  }

  async listMailboxes(): Promise<MailboxList> {
    const dirs = this.layout.listMailboxDirs(this.warn);
    const seen = new Set<string>();
    const scanned: IndexedMailbox[] = [];
    const known = new Map(this.index.listMailboxes().map((m) => [m.guid, m]));
    const ts = Math.floor(Date.now() / 1000);
    // A folder's identity is its directory's uidlist: a directory without one (made by a
    // client under a name another folder was renamed away from) is a new folder, and must not
    // be recovered as the folder the index knew by that name while that folder's uidlist lives on.
    const claimed = new Set(dirs.map(({ dir }) => readUidlistGuid(dir)).filter((g): g is string => g !== undefined));
    for (const { name, dir } of dirs) {
      const byName = [...known.values()].find((m) => sameMailbox(m.name, name));
      if (byName && claimed.has(byName.guid) && !existsSync(join(dir, UIDLIST_FILENAME))) await this.startUidlist(name, dir);
    }
    for (const { name, dir } of dirs) {
      const before = readUidlistGuid(dir);
      const previous = before ? known.get(before) : undefined;
      ensureMaildirDirs(dir, isInbox(name));
      const mailbox = await scanMailbox(this.ctx(name, dir));
      if (seen.has(mailbox.guid)) {
        // A copied folder carries its original's uidlist; Dovecot gives the later one a new GUID.
        this.warn(`${dir}: mailbox GUID ${mailbox.guid} is also used by another folder; giving this one a new GUID`);
        await updateUidlistHeader(this.ctx(name, dir), { guid: newMailboxGuid() });
        scanned.push(await scanMailbox(this.ctx(name, dir)));
        seen.add(scanned.at(-1)!.guid);
        continue;
      }
      seen.add(mailbox.guid);
      if (!known.has(mailbox.guid)) {
        this.index.logMailboxChange({ type: 'create', guid: mailbox.guid, name, timestamp: ts });
      } else if (previous && !sameMailbox(previous.name, name)) {
        this.index.logMailboxChange({ type: 'rename', guid: mailbox.guid, name, oldName: previous.name, timestamp: ts });
      }
      scanned.push(mailbox);
    }
    for (const m of known.values()) {
      if (seen.has(m.guid)) continue;
      this.index.logMailboxChange({ type: 'delete', guid: m.guid, name: m.name, timestamp: ts });
      this.index.removeMailbox(m.id);
    }
    const subscribed = this.subscribedSet();
    return {
      mailboxes: scanned.map((m) => this.status(m, subscribed)),
      changes: this.index.mailboxLog(),
      separator: this.layout.separator,
    };
  }

  /** An empty uidlist with a GUID and UIDVALIDITY of its own; the next scan numbers the files. */
  private async startUidlist(name: MailboxName, dir: string): Promise<void> {
    ensureMaildirDirs(dir, isInbox(name));
    const lock = await Dotlock.acquire(join(dir, UIDLIST_FILENAME), { timeoutSeconds: this.lockTimeoutSeconds, fsync: this.fsync });
    try {
      if (existsSync(join(dir, UIDLIST_FILENAME))) return;
      lock.replace(formatUidlist({ version: 3, uidValidity: nextUidValidity(this.loc.root), nextUid: 1, mailboxGuid: newMailboxGuid(), headerExtra: [], entries: [] }));
    } finally {
      lock.release();
    }
  }

  async mailboxStatus(name: MailboxName): Promise<MailboxStatus | undefined> {
    if (!this.existingDir(name)) return undefined;
    const { mailbox } = await this.open(name);
    return this.status(mailbox, this.subscribedSet());
  }

  async getMessages(name: MailboxName, sinceModseq?: number): Promise<MailboxChanges> {
    const { ctx, mailbox } = await this.open(name);
    const incremental = sinceModseq !== undefined && sinceModseq >= mailbox.firstModseq;
    const skipped = skippedEntries.get(ctx.dir)?.length ?? 0;
    const base = {
      uidValidity: mailbox.uidValidity,
      uidNext: mailbox.uidNext,
      highestModseq: mailbox.highestModseq,
      ...(skipped > 0 ? { skipped } : {}),
    };
    if (!incremental) {
      const expunged = this.index.expungesSince(mailbox.id, 0);
      return { ...base, messages: this.index.messagesAs(mailbox.id, toMeta), expunged, incremental: false };
    }
    return {
      ...base,
      messages: this.index.messagesSince(mailbox.id, sinceModseq).map(toMeta),
      expunged: this.index.expungesSince(mailbox.id, sinceModseq),
      incremental: true,
    };
  }

  async getMessagesOf(name: MailboxName, which: { uids: ReadonlySet<number>; guids: ReadonlySet<string> }): Promise<MessagesOf> {
    const { mailbox } = await this.open(name);
    const messages = this.index.messagesOfAs(mailbox.id, which.uids, which.guids, toMeta);
    return { uidValidity: mailbox.uidValidity, uidNext: mailbox.uidNext, highestModseq: mailbox.highestModseq, messages };
  }

  /**
   * Copying a mailbox opens every message in turn, so the index as last scanned by this store
   * is trusted first; only a file that is not where the index says costs a rescan.
   */
  async openMessage(name: MailboxName, uid: number): Promise<Readable> {
    const canonical = canonicalName(name);
    const key = mailboxKey(canonical);
    for (let attempt = 0; attempt < 2; attempt++) {
      let known = attempt === 0 ? this.recentlyScanned.get(key) : undefined;
      if (!known) {
        const { ctx, mailbox } = await this.open(canonical);
        known = { dir: ctx.dir, id: mailbox.id };
      }
      const row = this.index.message(known.id, uid);
      const path = row && join(known.dir, row.file);
      if (path) {
        try {
          // Most mail is small: one read beats a stream's per-chunk round trips through the thread pool.
          if (row.size <= SMALL_MESSAGE_BYTES) return Readable.from([readFileSafe(path)]);
          return (await openFile(path)).createReadStream();
        } catch (err) {
          if (!(err instanceof MailferryError && err.kind === 'notfound')) throw err;
        }
      }
      // Renamed by a flag change elsewhere, or new since the last scan: scan and look again.
      this.index.invalidateScan(known.id);
      this.scannedThisSession.clear();
    }
    throw notFoundError(`mailbox '${this.layout.formatName(canonical)}' has no message with UID ${uid}`);
  }

  messageHashes(name: MailboxName, uids: readonly number[]): Promise<Map<number, string>> {
    return hashesByReading(this, name, uids);
  }

  async saveMessages(name: MailboxName, messages: Iterable<SaveRequest> | AsyncIterable<SaveRequest>): Promise<SavedMessage[]> {
    const { ctx, mailbox } = await this.open(name);
    return this.ownWrite(ctx, mailbox, () => saveMessages(ctx, mailbox, messages));
  }

  async updateFlags(name: MailboxName, updates: readonly FlagUpdate[]): Promise<void> {
    const { ctx, mailbox } = await this.open(name);
    await this.ownWrite(ctx, mailbox, () => updateFlags(ctx, mailbox, updates));
  }

  async expunge(name: MailboxName, uids: readonly number[]): Promise<void> {
    const { ctx, mailbox } = await this.open(name);
    await this.ownWrite(ctx, mailbox, () => expungeMessages(ctx, mailbox, uids));
  }

  /**
   * A write of ours puts its changes into the index itself, so the directory it leaves behind
   * needs no rescan in this session, provided the index matched the directory when it began
   * (nothing touched it since our last scan). A sync writes each changed mailbox three or four
   * times, and each write used to cost a full rescan of the mailbox at the next read.
   */
  private async ownWrite<T>(ctx: ScanContext, mailbox: IndexedMailbox, write: () => Promise<T>): Promise<T> {
    const trusted = this.scannedThisSession.get(mailbox.guid) === fingerprint(ctx.dir).value;
    this.scannedThisSession.delete(mailbox.guid);
    const result = await write();
    if (trusted) this.scannedThisSession.set(mailbox.guid, fingerprint(ctx.dir).value);
    return result;
  }

  mailboxNameProblem(name: MailboxName): string | undefined {
    try {
      this.layout.dirOf(name);
      return undefined;
    } catch (err) {
      if (err instanceof MailferryError) return `${err.message}; skip it with -x, or use ${this.loc.layout === 'fs' ? 'the Maildir++ layout' : 'LAYOUT=fs'}`;
      throw err;
    }
  }

  async createMailbox(name: MailboxName, options: CreateMailboxOptions = {}): Promise<MailboxStatus> {
    const canonical = canonicalName(name);
    const shown = this.layout.formatName(canonical);
    const dir = this.layout.dirOf(canonical);
    if (isInbox(canonical) || isMaildir(dir)) throw existsError(`mailbox '${shown}' already exists in ${this.location}`);
    if (options.guid !== undefined && !/^[0-9a-f]{32}$/.test(options.guid)) {
      throw usageError(`invalid mailbox GUID '${options.guid}' for '${shown}': expected 32 hex digits`);
    }
    const guid = options.guid ?? newMailboxGuid();
    if (this.index.mailboxByGuid(guid)) throw existsError(`mailbox GUID ${guid} is already used in ${this.location}`);
    const uidValidity = options.uidValidity ?? nextUidValidity(this.loc.root);
    ensureMaildirDirs(dir, false);
    const uidlistPath = join(dir, UIDLIST_FILENAME);
    const lock = await Dotlock.acquire(uidlistPath, { timeoutSeconds: this.lockTimeoutSeconds, fsync: this.fsync });
    try {
      lock.replace(formatUidlist({ version: 3, uidValidity, nextUid: 1, mailboxGuid: guid, headerExtra: [], entries: [] }));
    } finally {
      lock.release();
    }
    const mailbox = this.index.addMailbox(guid, canonical, uidValidity);
    if (options.specialUse?.length) this.index.setSpecialUse(mailbox.id, options.specialUse);
    this.index.logMailboxChange({ type: 'create', guid, name: canonical, timestamp: Math.floor(Date.now() / 1000) });
    return this.status(await scanMailbox(this.ctx(canonical, dir)), this.subscribedSet());
  }

  async renameMailbox(from: MailboxName, to: MailboxName): Promise<void> {
    const src = canonicalName(from);
    const dst = canonicalName(to);
    if (isInbox(src)) throw usageError(`renaming INBOX is not supported in ${this.location}`);
    const srcDir = this.existingDir(src);
    if (!srcDir) throw notFoundError(`mailbox '${this.layout.formatName(src)}' does not exist in ${this.location}`);
    const dstDir = this.layout.dirOf(dst);
    if (isInbox(dst) || isMaildir(dstDir)) throw existsError(`mailbox '${this.layout.formatName(dst)}' already exists in ${this.location}`);
    if (dst.length > src.length && sameMailbox(dst.slice(0, src.length), src)) {
      throw usageError(`cannot rename '${this.layout.formatName(src)}' into its own child '${this.layout.formatName(dst)}'`);
    }
    // Scan first so the index holds the GUIDs that identify these folders after the move.
    const affected = this.layout.listMailboxDirs(this.warn).filter((m) => sameMailbox(m.name.slice(0, src.length), src));
    for (const m of affected) await scanMailbox(this.ctx(m.name, m.dir));
    // Refused before anything moves: a rename that stops halfway splits a tree between two names.
    const landing = this.loc.layout === 'fs' ? this.fsLanding(srcDir, dstDir) : { moves: [], emptied: [] };
    if (this.loc.layout !== 'fs') {
      for (const m of affected) {
        const newName = [...dst, ...m.name.slice(src.length)];
        if (entryKind(this.layout.dirOf(newName)) !== 'missing') throw existsError(`cannot rename '${this.layout.formatName(src)}' to '${this.layout.formatName(dst)}': '${this.layout.formatName(newName)}' already exists in ${this.location}`);
      }
    }
    try {
      if (this.loc.layout === 'fs') {
        mkdirSync(dirname(dstDir), { recursive: true });
        // The name is a plain directory holding child folders (a deleted parent): those children
        // join the moving folder's own, then the whole tree takes the name. Each step moves whole
        // directories, so every folder keeps its uidlist and an interrupted run loses nothing.
        // A folder renamed to the name of a plain directory it lies in (Work/Sub to Work after
        // Work was deleted) first steps out of it, under a name a listing shows, so an
        // interrupted run leaves a renamed folder, never a hidden one.
        let from = srcDir;
        if (srcDir.startsWith(`${dstDir}/`)) {
          from = join(dirname(dstDir), `${basename(dstDir)}-mailferry-rename-${process.pid}`);
          if (entryKind(from) !== 'missing') throw existsError(`cannot rename ${srcDir} to ${dstDir}: ${from} is in the way`);
          renameSync(srcDir, from);
        }
        for (const [here, into] of landing.moves) renameSync(here, from + into.slice(srcDir.length));
        for (const d of landing.emptied) rmdirSync(d);
        renameSync(from, dstDir);
      } else {
        for (const m of affected) {
          const newName = [...dst, ...m.name.slice(src.length)];
          renameSync(m.dir, this.layout.dirOf(newName));
        }
      }
    } catch (err) {
      throw fsError(err, `renaming ${srcDir} to ${dstDir}`);
    }
    const ts = Math.floor(Date.now() / 1000);
    for (const m of affected) {
      const guid = readUidlistGuid(this.layout.dirOf([...dst, ...m.name.slice(src.length)]));
      const indexed = guid ? this.index.mailboxByGuid(guid) : undefined;
      if (!indexed) continue;
      const newName = [...dst, ...m.name.slice(src.length)];
      this.index.renameMailbox(indexed.id, newName);
      this.index.logMailboxChange({ type: 'rename', guid: indexed.guid, name: newName, oldName: m.name, timestamp: ts });
    }
  }

  /**
   * LAYOUT=fs: how what already lies where a folder is renamed to (plain directories left by a
   * deleted parent, or made for a deeper folder) joins the moving tree: each entry the moving
   * tree lacks moves in whole; a plain directory meets its namesake and is walked into. Two
   * folders (or files) at one place are refused. Returns the moves, then the directories that
   * are empty once they are done, deepest first.
   */
  private fsLanding(srcDir: string, dstDir: string): { moves: [string, string][]; emptied: string[] } {
    const kind = entryKind(dstDir);
    if (kind === 'missing') return { moves: [], emptied: [] };
    if (kind !== 'directory') throw existsError(`cannot rename ${srcDir} to ${dstDir}: ${dstDir} exists and is not a directory`);
    const moves: [string, string][] = [];
    const emptied: string[] = [];
    const walk = (from: string, into: string) => {
      for (const e of readdirSync(from)) {
        const [here, there] = [join(from, e), join(into, e)];
        if (here === srcDir) continue;
        const thereKind = entryKind(there);
        if (thereKind === 'missing') moves.push([here, there]);
        else if (entryKind(here) === 'directory' && thereKind === 'directory' && !isMaildir(here) && !['cur', 'new', 'tmp'].includes(e)) walk(here, there);
        else throw existsError(`cannot rename ${srcDir} to ${dstDir}: both hold ${JSON.stringify(here.slice(dstDir.length + 1))}`);
      }
      emptied.push(from);
    };
    walk(dstDir, srcDir);
    return { moves, emptied };
  }

  async deleteMailbox(name: MailboxName): Promise<void> {
    const canonical = canonicalName(name);
    const shown = this.layout.formatName(canonical);
    if (isInbox(canonical)) throw usageError(`INBOX cannot be deleted in ${this.location}`);
    const dir = this.existingDir(canonical);
    if (!dir) throw notFoundError(`mailbox '${shown}' does not exist in ${this.location}`);
    const mailbox = await scanMailbox(this.ctx(canonical, dir));
    const known = new Set(this.index.messages(mailbox.id).map((m) => m.file));
    let removed: RemovedMailbox & { where: string };
    try {
      // With LAYOUT=fs child folders live inside this directory: it stays, as a plain directory.
      const children = this.loc.layout === 'fs' ? this.layout.listMailboxDirs(this.warn).filter((m) => m.name.length > canonical.length && sameMailbox(m.name.slice(0, canonical.length), canonical)) : [];
      if (children.length > 0) {
        const keep = new Set(readdirSync(dir).filter((e) => entryKind(join(dir, e)) === 'directory' && !['cur', 'new', 'tmp'].includes(e)));
        removed = { ...removeMailboxFiles(dir, known, keep), where: dir };
      } else {
        const trash = join(this.loc.layout === 'fs' ? dirname(dir) : this.loc.root, `..DOVECOT-TRASH.${process.pid}.${Date.now()}`);
        removed = deleteMailboxDir(dir, trash, known);
      }
    } catch (err) {
      throw fsError(err, `deleting mailbox ${dir}`);
    }
    if (removed.left.length > 0) {
      const first = JSON.stringify(join(removed.where, removed.left[0]!));
      this.warn(
        removed.mailLeft
          ? `mailbox '${shown}' deleted, but ${removed.where} holds mail mailferry had not seen (${first}${removed.left.length > 1 ? ` and ${removed.left.length - 1} more` : ''}): kept, it will be listed again as a new folder`
          : `mailbox '${shown}' deleted; kept ${removed.where} for what is not mail (${first}${removed.left.length > 1 ? ` and ${removed.left.length - 1} more` : ''})`,
      );
    }
    this.index.logMailboxChange({ type: 'delete', guid: mailbox.guid, name: canonical, timestamp: Math.floor(Date.now() / 1000) });
    this.index.removeMailbox(mailbox.id);
  }

  async updateMailbox(name: MailboxName, update: MailboxUpdate): Promise<MailboxStatus> {
    const { ctx, mailbox } = await this.open(name);
    if (update.guid !== undefined && !/^[0-9a-f]{32}$/.test(update.guid)) {
      throw usageError(`invalid mailbox GUID '${update.guid}': expected 32 hex digits`);
    }
    const newGuid = update.guid !== undefined && update.guid !== mailbox.guid ? update.guid : undefined;
    if (newGuid !== undefined && this.index.mailboxByGuid(newGuid)) throw existsError(`mailbox GUID ${newGuid} is already used in ${this.location}`);
    // The uidlist first: it is what a scan trusts. Killed after the index took the new GUID but
    // before the uidlist did, the next scan would take the old GUID for a new mailbox and log the
    // new one as deleted, and a peer holding that GUID could never be joined with this mailbox.
    const written = await updateUidlistHeader(ctx, update);
    failpoint('set-guid-after-uidlist');
    if (newGuid !== undefined) this.index.setGuid(mailbox.id, newGuid);
    if (written.uidValidity !== mailbox.uidValidity) this.index.resetMailbox(mailbox.id, written.uidValidity);
    this.index.setUidNext(mailbox.id, nextUidOf(written));
    return this.status(await scanMailbox(ctx), this.subscribedSet());
  }

  async setSubscribed(name: MailboxName, subscribed: boolean): Promise<void> {
    const canonical = canonicalName(name);
    const names = this.currentSubscriptions();
    const has = names.some((n) => sameMailbox(n, canonical));
    if (has === subscribed) return;
    const next = subscribed ? [...names, canonical] : names.filter((n) => !sameMailbox(n, canonical));
    await writeSubscriptions(this.loc.root, next, { timeoutSeconds: this.lockTimeoutSeconds, fsync: this.fsync });
    this.index.setKnownSubscriptions(next);
    this.index.logMailboxChange({
      type: subscribed ? 'subscribe' : 'unsubscribe',
      name: canonical,
      timestamp: Math.floor(Date.now() / 1000),
    });
  }

  get storeId(): string {
    return this.index.storeId();
  }

  async getPairState(peerId: string): Promise<PairState> {
    return this.index.pairState(peerId) as PairState;
  }

  async getSyncedFlags(peerId: string, mailboxGuid: string, guids: readonly string[]): Promise<Map<string, SyncedFlags>> {
    const rows = this.index.syncedFlags(peerId, mailboxGuid, guids);
    return new Map([...rows].map(([guid, json]) => [guid, JSON.parse(json) as SyncedFlags]));
  }

  async setSyncedFlags(peerId: string, mailboxGuid: string, entries: readonly ({ guid: string } & SyncedFlags)[], replaceAll: boolean): Promise<void> {
    // Most messages have no keywords and one of a few sets of system flags: one string for
    // each such set, not one per message. Rows are made as the index writes them, not first
    // all at once (a first backup records every message of a mailbox).
    const texts = new Map<string, string>();
    function* rows(): Generator<{ guid: string; flags: string }> {
      for (const e of entries) {
        if (e.keywords.length > 0) {
          yield { guid: e.guid, flags: JSON.stringify({ flags: e.flags, keywords: e.keywords }) };
          continue;
        }
        const key = e.flags.join(' ');
        let flags = texts.get(key);
        if (flags === undefined) {
          flags = JSON.stringify({ flags: e.flags, keywords: [] });
          texts.set(key, flags);
        }
        yield { guid: e.guid, flags };
      }
    }
    this.index.setSyncedFlags(peerId, mailboxGuid, rows(), replaceAll);
  }

  /** One stat per asked-for message; the engine asks only where no earlier sync decides. */
  async flagChangeTimes(name: MailboxName, uids: readonly number[]): Promise<Map<number, number>> {
    const { ctx, mailbox } = await this.open(name);
    const files = new Map<number, string>();
    for (const uid of uids) {
      const row = this.index.message(mailbox.id, uid);
      if (row) files.set(uid, row.file);
    }
    return flagChangeTimes(ctx.dir, files);
  }

  async setPairState(peerId: string, state: PairState): Promise<void> {
    this.index.setPairState(peerId, state);
  }

  async close(): Promise<void> {
    this.index.close();
  }
}
