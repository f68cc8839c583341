/**
 * mailferry's change index: what Dovecot's binary index gives dsync, for stores that lack
 * one. One SQLite database (WAL) per mail root records, per mailbox, every message with a
 * modseq, every expunge with the GUID it had, and the mailbox-list change log.
 *
 * The index only ever describes mail; it never holds any. Deleting it costs the next sync
 * its incrementality, nothing else: the next scan rebuilds it from the files.
 */
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { dataError, fsError, tempError } from '../../model/errors.js';
import { chownPath, ownerFor } from '../maildir/ownership.js';
import { mailboxKey, type MailboxListChange, type MailboxName } from '../store.js';

export const INDEX_FILENAME = 'mailferry.index.sqlite';
const SCHEMA_VERSION = 3;
/** How long a statement waits for another process's write transaction before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 30_000;
/** The most rows of one mailbox `messages` keeps between calls (about 300 bytes each). */
export const CACHED_ROWS_MAX = 50_000;

/**
 * Every scan writes the index, so a place mailferry may not write is a permission problem,
 * said as one before SQLite turns it into "unable to open database file" (which reads as corruption).
 */
function requireWritable(dir: string, path: string): void {
  for (const [p, what] of [[dir, `change index directory ${dir}`], [path, `change index ${path}`]] as const) {
    if (!existsSync(p)) continue;
    try {
      accessSync(p, constants.W_OK);
    } catch (err) {
      throw fsError(err, what);
    }
  }
}

function openError(err: unknown, path: string): Error {
  const code = (err as { code?: string }).code;
  if (code?.startsWith('SQLITE_BUSY')) {
    return tempError(`change index ${path} is held by another process (waited ${BUSY_TIMEOUT_MS / 1000} s); retry later`, err);
  }
  if (code?.startsWith('SQLITE_')) {
    return dataError(`change index ${path} is unreadable (${(err as Error).message}); move it aside to rebuild it`, err);
  }
  return fsError(err, `change index ${path}`);
}

export interface IndexedMailbox {
  id: number;
  guid: string;
  name: MailboxName;
  uidValidity: number;
  highestModseq: number;
  /** Changes since a modseq below this one are not known (the index was started or reset then). */
  firstModseq: number;
  messages: number;
  /** UIDNEXT as of the last scan. */
  uidNext: number;
  /** Opaque fingerprint of the directory state at the last complete scan. */
  scanFingerprint: string | null;
  specialUse: string[];
}

export interface IndexedMessage {
  uid: number;
  guid: string;
  /** Path relative to the mailbox directory, e.g. `cur/123.M1P2.host,S=10:2,S`. */
  file: string;
  /** System flags as Maildir letters (DFRST), sorted. */
  flagLetters: string;
  keywords: string[];
  modseq: number;
  receivedDate: number;
  size: number;
}

export interface ScanState {
  uidNext: number;
  /** Null when the directories changed too recently for their mtimes to prove the next scan unneeded. */
  fingerprint: string | null;
}

export type MessageChange =
  | { kind: 'add'; message: Omit<IndexedMessage, 'modseq'> }
  | { kind: 'update'; message: Omit<IndexedMessage, 'modseq'>; bumpModseq: boolean }
  | { kind: 'expunge'; uid: number; guid: string };

interface MailboxRow {
  id: number;
  guid: string;
  name: string;
  uid_validity: number;
  highest_modseq: number;
  first_modseq: number;
  messages: number;
  uid_next: number;
  scan_fingerprint: string | null;
  special_use: string;
}

interface MessageRow {
  uid: number;
  guid: string;
  file: string;
  flags: string;
  keywords: string;
  modseq: number;
  received: number;
  size: number;
}

function toMailbox(r: MailboxRow): IndexedMailbox {
  return {
    id: r.id,
    guid: r.guid,
    name: JSON.parse(r.name) as string[],
    uidValidity: r.uid_validity,
    highestModseq: r.highest_modseq,
    firstModseq: r.first_modseq,
    messages: r.messages,
    uidNext: r.uid_next,
    scanFingerprint: r.scan_fingerprint,
    specialUse: JSON.parse(r.special_use) as string[],
  };
}

/** What a pair-state record holds per mailbox (PairMailboxState in the store contract). */
const PAIR_STATE_FIELDS = ['uidValidity', 'uidNext', 'highestModseq', 'peerUidValidity', 'peerUidNext', 'peerHighestModseq'];

/** The columns of a message row, in the order `rawMessage` reads them. */
const MESSAGE_COLUMNS = 'uid, guid, file, flags, keywords, modseq, received, size';
type RawMessageRow = [number, string, string, string, string, number, number, number];

/** Rows read as arrays: a 100k-message mailbox is read on every scan that finds a change. */
function rawMessage(r: RawMessageRow): IndexedMessage {
  return {
    uid: r[0],
    guid: r[1],
    file: r[2],
    flagLetters: r[3],
    keywords: r[4] === '' ? [] : (JSON.parse(r[4]) as string[]),
    modseq: r[5],
    receivedDate: r[6],
    size: r[7],
  };
}

function toMessage(r: MessageRow): IndexedMessage {
  return {
    uid: r.uid,
    guid: r.guid,
    file: r.file,
    flagLetters: r.flags,
    keywords: r.keywords === '' ? [] : (JSON.parse(r.keywords) as string[]),
    modseq: r.modseq,
    receivedDate: r.received,
    size: r.size,
  };
}

/**
 * Modseqs of a new (or reset) mailbox start at the current time in microseconds, so a
 * rebuilt index never hands out modseqs that an older sync state could mistake for its own:
 * no index makes a million changes a second. (2^53 leaves room until the year 2255.)
 */
function freshModseqBase(previous = 0): number {
  return Math.max(Date.now() * 1000, previous + 1);
}

export class ChangeIndex {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly cachedRows = new Map<number, IndexedMessage[]>();
  private cachedVersion = -1;
  private writeCount = 0;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.db = db;
  }

  /**
   * `fsync: false` (a store opened with mail_fsync=never) lets SQLite skip its fsyncs too, as
   * Dovecot's index does then: a commit, and the checkpoint when the index closes, cost two or
   * more fsyncs otherwise, even for the one row a run over unchanged mail records. A crash of
   * the process loses nothing either way; only the machine's may.
   */
  static open(dir: string, options: { fsync?: boolean } = {}): ChangeIndex {
    const path = join(dir, INDEX_FILENAME);
    let db: Database.Database;
    try {
      // A state directory made here is private; a Maildir root keeps the mode it has.
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      requireWritable(dir, path);
      createPrivately(path, dir);
      // The timeout is set as the connection opens: switching to WAL can already meet a writer.
      db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
      // Before the switch to WAL, which writes a new index's header.
      if (options.fsync === false) db.pragma('synchronous = OFF');
      db.pragma('journal_mode = WAL');
      if (options.fsync !== false) db.pragma('synchronous = NORMAL');
      // A root run over a user's mail must leave the index usable by that user's own runs.
      const owner = ownerFor(dir);
      for (const suffix of ['', '-wal', '-shm']) {
        try {
          chownPath(path + suffix, owner);
        } catch {
          // -wal and -shm exist only while a connection is open
        }
      }
    } catch (err) {
      throw openError(err, path);
    }
    const index = new ChangeIndex(path, db);
    try {
      index.migrate();
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) throw openError(err, path);
      throw dataError(`change index ${path} is corrupt (${(err as Error).message}); move it aside to rebuild it`, err);
    }
    return index;
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version === SCHEMA_VERSION) {
      this.stmt('SELECT count(*) FROM mailboxes').get();
      return;
    }
    if (version > SCHEMA_VERSION) {
      throw new Error(`it was written by a newer mailferry (schema ${version})`);
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS mailboxes (
        id INTEGER PRIMARY KEY,
        guid TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        uid_validity INTEGER NOT NULL,
        highest_modseq INTEGER NOT NULL,
        first_modseq INTEGER NOT NULL,
        messages INTEGER NOT NULL DEFAULT 0,
        uid_next INTEGER NOT NULL DEFAULT 1,
        scan_fingerprint TEXT,
        special_use TEXT NOT NULL DEFAULT '[]'
      );
      CREATE TABLE IF NOT EXISTS messages (
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        guid TEXT NOT NULL,
        file TEXT NOT NULL,
        flags TEXT NOT NULL,
        keywords TEXT NOT NULL,
        modseq INTEGER NOT NULL,
        received INTEGER NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq);
      CREATE TABLE IF NOT EXISTS expunges (
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        guid TEXT NOT NULL,
        modseq INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS expunges_modseq ON expunges (mailbox_id, modseq);
      CREATE TABLE IF NOT EXISTS mailbox_log (
        id INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        guid TEXT,
        name TEXT NOT NULL,
        old_name TEXT,
        ts INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS subscriptions (name TEXT PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS pair_state (
        peer_id TEXT NOT NULL,
        mailbox_guid TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (peer_id, mailbox_guid)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS pending_saves (
        mailbox_id INTEGER NOT NULL,
        basename TEXT NOT NULL,
        uid INTEGER,
        guid TEXT NOT NULL,
        PRIMARY KEY (mailbox_id, basename)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS synced_flags (
        peer_id TEXT NOT NULL,
        mailbox_guid TEXT NOT NULL,
        guid TEXT NOT NULL,
        flags TEXT NOT NULL,
        PRIMARY KEY (peer_id, mailbox_guid, guid)
      ) WITHOUT ROWID;
    `);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }

  /** Statements are compiled once per index: compiling costs more than running most of them. */
  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** A statement whose rows come back as arrays of the selected columns. */
  private rawStmt(sql: string): Database.Statement {
    const key = `raw:${sql}`;
    let st = this.statements.get(key);
    if (!st) {
      st = this.db.prepare(sql).raw(true);
      this.statements.set(key, st);
    }
    return st;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /**
   * Grows with every change this connection makes to a mailbox row or its messages, so a
   * caller can keep what it derived from them (the IMAP body reader's view) without asking
   * SQLite again while it stands still.
   */
  get writes(): number {
    return this.writeCount;
  }

  listMailboxes(): IndexedMailbox[] {
    return (this.stmt('SELECT * FROM mailboxes').all() as MailboxRow[]).map(toMailbox);
  }

  mailboxByGuid(guid: string): IndexedMailbox | undefined {
    const row = this.stmt('SELECT * FROM mailboxes WHERE guid = ?').get(guid) as MailboxRow | undefined;
    return row && toMailbox(row);
  }

  /** Registers a mailbox seen for the first time (or again after a reset of its UIDVALIDITY). */
  addMailbox(guid: string, name: MailboxName, uidValidity: number): IndexedMailbox {
    this.writeCount++;
    const base = freshModseqBase();
    this.db
      .prepare(
        'INSERT INTO mailboxes (guid, name, uid_validity, highest_modseq, first_modseq) VALUES (?, ?, ?, ?, ?)',
      )
      .run(guid, JSON.stringify(name), uidValidity, base, base);
    return this.mailboxByGuid(guid)!;
  }

  renameMailbox(id: number, name: MailboxName): void {
    this.writeCount++;
    this.stmt('UPDATE mailboxes SET name = ? WHERE id = ?').run(JSON.stringify(name), id);
  }

  setSpecialUse(id: number, specialUse: readonly string[]): void {
    this.writeCount++;
    this.stmt('UPDATE mailboxes SET special_use = ? WHERE id = ?').run(JSON.stringify(specialUse), id);
  }

  /** Forgets every message of a mailbox whose UIDVALIDITY changed; older modseqs become unknown. */
  resetMailbox(id: number, uidValidity: number): void {
    this.writeCount++;
    this.cachedRows.delete(id);
    this.transaction(() => {
      const row = this.stmt('SELECT highest_modseq FROM mailboxes WHERE id = ?').get(id) as { highest_modseq: number };
      const base = freshModseqBase(row.highest_modseq);
      this.stmt('DELETE FROM messages WHERE mailbox_id = ?').run(id);
      this.stmt('DELETE FROM expunges WHERE mailbox_id = ?').run(id);
      this.stmt(
          'UPDATE mailboxes SET uid_validity = ?, highest_modseq = ?, first_modseq = ?, messages = 0, scan_fingerprint = NULL WHERE id = ?',
        )
        .run(uidValidity, base, base, id);
    });
  }

  removeMailbox(id: number): void {
    this.writeCount++;
    this.cachedRows.delete(id);
    this.transaction(() => {
      this.stmt('DELETE FROM messages WHERE mailbox_id = ?').run(id);
      this.stmt('DELETE FROM expunges WHERE mailbox_id = ?').run(id);
      this.stmt('DELETE FROM pending_saves WHERE mailbox_id = ?').run(id);
      this.stmt('DELETE FROM mailboxes WHERE id = ?').run(id);
    });
  }

  /**
   * Every message of a mailbox, by UID. A sync reads one mailbox's rows several times (scan,
   * listing, save, re-plan), so they are kept until this connection changes them, another
   * connection commits anything (SQLite's data_version says so) or another mailbox is read.
   * Rows are shared: do not mutate.
   */
  messages(mailboxId: number): IndexedMessage[] {
    return this.messagesAs(mailboxId, (m) => m);
  }

  /**
   * `messages`, each row turned into what the caller keeps as it is read: a mailbox too large to
   * keep is then never held twice over (its rows and the caller's records), and each row read
   * dies young instead of filling the heap's old space with a whole mailbox of garbage.
   */
  messagesAs<T>(mailboxId: number, as: (m: IndexedMessage) => T): T[] {
    const version = this.db.pragma('data_version', { simple: true }) as number;
    if (version !== this.cachedVersion) {
      this.cachedRows.clear();
      this.cachedVersion = version;
    }
    const cached = this.cachedRows.get(mailboxId);
    if (cached) return cached.map(as);
    // Only the mailbox read last is kept: a run goes mailbox by mailbox, and keeping every
    // mailbox's rows held a whole account's (a million messages: hundreds of MB) to the end.
    this.cachedRows.clear();
    // Nor a mailbox so large that its rows would outweigh what reading them again costs: a
    // 700,000-message folder's rows are some 200 MB, held beside the run's own listings of
    // it on both sides, while SQLite reads them again in about a second.
    let kept: IndexedMessage[] | undefined = [];
    const out: T[] = [];
    const rows = this.rawStmt(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? ORDER BY uid`).iterate(mailboxId) as IterableIterator<RawMessageRow>;
    for (const r of rows) {
      const row = rawMessage(r);
      out.push(as(row));
      if (kept && kept.push(row) > CACHED_ROWS_MAX) kept = undefined;
    }
    if (kept) this.cachedRows.set(mailboxId, kept);
    return out;
  }

  /**
   * The messages at these UIDs and every message with these GUIDs, by UID: what an incremental
   * sync reads. From the kept rows when this connection has them; otherwise SQLite picks them
   * out, so a mailbox of 100,000 messages is not turned into 100,000 objects for a few.
   */
  messagesOf(mailboxId: number, uids: ReadonlySet<number>, guids: ReadonlySet<string>): IndexedMessage[] {
    return this.messagesOfAs(mailboxId, uids, guids, (m) => m);
  }

  /** `messagesOf`, each row turned into what the caller keeps as it is read (see messagesAs). */
  messagesOfAs<T>(mailboxId: number, uids: ReadonlySet<number>, guids: ReadonlySet<string>, as: (m: IndexedMessage) => T): T[] {
    const version = this.db.pragma('data_version', { simple: true }) as number;
    const cached = version === this.cachedVersion ? this.cachedRows.get(mailboxId) : undefined;
    if (cached) return cached.filter((m) => uids.has(m.uid) || guids.has(m.guid)).map(as);
    const rows = this.rawStmt(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? AND (uid IN (SELECT value FROM json_each(?)) OR guid IN (SELECT value FROM json_each(?))) ORDER BY uid`,
    ).iterate(mailboxId, JSON.stringify([...uids]), JSON.stringify([...guids])) as IterableIterator<RawMessageRow>;
    const out: T[] = [];
    for (const r of rows) out.push(as(rawMessage(r)));
    return out;
  }

  message(mailboxId: number, uid: number): IndexedMessage | undefined {
    const row = this.stmt('SELECT * FROM messages WHERE mailbox_id = ? AND uid = ?').get(mailboxId, uid) as
      | MessageRow
      | undefined;
    return row && toMessage(row);
  }

  messagesSince(mailboxId: number, modseq: number): IndexedMessage[] {
    return (
      this.rawStmt(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ? AND modseq > ? ORDER BY uid`)
        .all(mailboxId, modseq) as RawMessageRow[]
    ).map(rawMessage);
  }

  /** Which of these UIDs the index saw expunged in the mailbox. */
  expungedAmong(mailboxId: number, uids: readonly number[]): Set<number> {
    if (uids.length === 0) return new Set();
    const rows = this.rawStmt('SELECT DISTINCT uid FROM expunges WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))')
      .all(mailboxId, JSON.stringify(uids)) as [number][];
    return new Set(rows.map(([uid]) => uid));
  }

  expungesSince(mailboxId: number, modseq: number): { uid: number; guid: string; modseq: number }[] {
    return this.db
      .prepare('SELECT uid, guid, modseq FROM expunges WHERE mailbox_id = ? AND modseq > ? ORDER BY uid')
      .all(mailboxId, modseq) as { uid: number; guid: string; modseq: number }[];
  }

  /**
   * Applies one batch of changes atomically; each add, flag change and expunge gets its own
   * modseq. Returns the modseq each change received, in order (0 where none was given).
   */
  applyChanges(mailboxId: number, changes: readonly MessageChange[], scan?: ScanState): number[] {
    this.writeCount++;
    const given = this.applyToTables(mailboxId, changes, scan);
    if (changes.length > 0) this.applyToCache(mailboxId, changes, given);
    return given;
  }

  /** Keeps the cached rows of a mailbox equal to the table after our own change. */
  private applyToCache(mailboxId: number, changes: readonly MessageChange[], given: readonly number[]): void {
    const rows = this.cachedRows.get(mailboxId);
    if (!rows) return;
    if (rows.length + changes.length > CACHED_ROWS_MAX) {
      this.cachedRows.delete(mailboxId);
      return;
    }
    const lastUid = rows.at(-1)?.uid ?? 0;
    // New mail saved in UID order, the common case of a large copy: append without a rebuild.
    if (changes.every((c, i) => c.kind === 'add' && c.message.uid > (i === 0 ? lastUid : (changes[i - 1] as { message: { uid: number } }).message.uid))) {
      changes.forEach((c, i) => rows.push({ ...(c as { message: Omit<IndexedMessage, 'modseq'> }).message, modseq: given[i]! }));
      return;
    }
    const byUid = new Map(rows.map((r) => [r.uid, r]));
    changes.forEach((c, i) => {
      if (c.kind === 'expunge') byUid.delete(c.uid);
      else if (c.kind === 'update' && !c.bumpModseq) {
        const old = byUid.get(c.message.uid);
        if (old) byUid.set(old.uid, { ...old, file: c.message.file, flagLetters: c.message.flagLetters, keywords: c.message.keywords, size: c.message.size });
      } else byUid.set(c.message.uid, { ...c.message, modseq: given[i]! });
    });
    this.cachedRows.set(mailboxId, [...byUid.values()].sort((a, b) => a.uid - b.uid));
  }

  private applyToTables(mailboxId: number, changes: readonly MessageChange[], scan?: ScanState): number[] {
    const insert = this.stmt(
      'INSERT OR REPLACE INTO messages (mailbox_id, uid, guid, file, flags, keywords, modseq, received, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const updateNoBump = this.stmt(
      'UPDATE messages SET file = ?, flags = ?, keywords = ?, size = ? WHERE mailbox_id = ? AND uid = ?',
    );
    const del = this.stmt('DELETE FROM messages WHERE mailbox_id = ? AND uid = ?');
    const addExpunge = this.stmt('INSERT INTO expunges (mailbox_id, uid, guid, modseq) VALUES (?, ?, ?, ?)');
    return this.transaction(() => {
      const row = this.stmt('SELECT highest_modseq FROM mailboxes WHERE id = ?').get(mailboxId) as
        | { highest_modseq: number }
        | undefined;
      if (!row) throw new Error(`mailbox ${mailboxId} is not in the change index`);
      let modseq = row.highest_modseq;
      const given: number[] = [];
      for (const change of changes) {
        if (change.kind === 'expunge') {
          del.run(mailboxId, change.uid);
          addExpunge.run(mailboxId, change.uid, change.guid, ++modseq);
          given.push(modseq);
          continue;
        }
        const m = change.message;
        const keywords = m.keywords.length === 0 ? '' : JSON.stringify(m.keywords);
        if (change.kind === 'update' && !change.bumpModseq) {
          updateNoBump.run(m.file, m.flagLetters, keywords, m.size, mailboxId, m.uid);
          given.push(0);
        } else {
          insert.run(mailboxId, m.uid, m.guid, m.file, m.flagLetters, keywords, ++modseq, m.receivedDate, m.size);
          given.push(modseq);
        }
      }
      const count = this.stmt('SELECT count(*) AS n FROM messages WHERE mailbox_id = ?').get(mailboxId) as {
        n: number;
      };
      if (scan) {
        this.stmt('UPDATE mailboxes SET highest_modseq = ?, messages = ?, uid_next = ?, scan_fingerprint = ? WHERE id = ?')
          .run(modseq, count.n, scan.uidNext, scan.fingerprint, mailboxId);
      } else {
        // A write of our own: the directory changed, so the next read must look at it again.
        this.stmt('UPDATE mailboxes SET highest_modseq = ?, messages = ?, scan_fingerprint = NULL WHERE id = ?')
          .run(modseq, count.n, mailboxId);
      }
      return given;
    });
  }

  /** Makes the next read of this mailbox scan its directory again. */
  invalidateScan(mailboxId: number): void {
    this.writeCount++;
    this.stmt('UPDATE mailboxes SET scan_fingerprint = NULL WHERE id = ?').run(mailboxId);
  }

  setUidNext(mailboxId: number, uidNext: number): void {
    this.writeCount++;
    this.stmt('UPDATE mailboxes SET uid_next = ?, scan_fingerprint = NULL WHERE id = ?').run(uidNext, mailboxId);
  }

  setGuid(mailboxId: number, guid: string): void {
    this.writeCount++;
    this.stmt('UPDATE mailboxes SET guid = ? WHERE id = ?').run(guid, mailboxId);
  }

  logMailboxChange(change: MailboxListChange): void {
    const guid = 'guid' in change ? change.guid : null;
    const oldName = change.type === 'rename' ? JSON.stringify(change.oldName) : null;
    this.db
      .prepare('INSERT INTO mailbox_log (type, guid, name, old_name, ts) VALUES (?, ?, ?, ?, ?)')
      .run(change.type, guid, JSON.stringify(change.name), oldName, change.timestamp);
  }

  mailboxLog(): MailboxListChange[] {
    const rows = this.stmt('SELECT * FROM mailbox_log ORDER BY id').all() as {
      type: MailboxListChange['type'];
      guid: string | null;
      name: string;
      old_name: string | null;
      ts: number;
    }[];
    return rows.map((r): MailboxListChange => {
      const name = JSON.parse(r.name) as string[];
      switch (r.type) {
        case 'rename':
          return { type: 'rename', guid: r.guid ?? '', name, oldName: JSON.parse(r.old_name ?? '[]') as string[], timestamp: r.ts };
        case 'create':
        case 'delete':
          return { type: r.type, guid: r.guid ?? '', name, timestamp: r.ts };
        default:
          return { type: r.type, name, timestamp: r.ts };
      }
    });
  }

  /** A random identifier made the first time the index is opened. */
  storeId(): string {
    const row = this.stmt("SELECT value FROM meta WHERE key = 'store_id'").get() as { value: string } | undefined;
    if (row) return row.value;
    const id = randomUUID();
    this.stmt("INSERT INTO meta (key, value) VALUES ('store_id', ?)").run(id);
    return id;
  }

  /**
   * A row that does not read back as an object of numbers is left out: the mailbox is then
   * compared in full, which is always safe, where trusting a damaged record could skip it.
   */
  pairState(peerId: string): Record<string, unknown> {
    const rows = this.stmt('SELECT mailbox_guid, state FROM pair_state WHERE peer_id = ?').all(peerId) as { mailbox_guid: string; state: string }[];
    const out: Record<string, unknown> = {};
    for (const r of rows) {
      let state: unknown;
      try {
        state = JSON.parse(r.state);
      } catch {
        continue;
      }
      if (state !== null && typeof state === 'object' && PAIR_STATE_FIELDS.every((k) => typeof (state as Record<string, unknown>)[k] === 'number')) out[r.mailbox_guid] = state;
    }
    return out;
  }

  setPairState(peerId: string, state: Record<string, unknown>): void {
    this.transaction(() => {
      const put = this.stmt('INSERT OR REPLACE INTO pair_state (peer_id, mailbox_guid, state) VALUES (?, ?, ?)');
      for (const [guid, value] of Object.entries(state)) put.run(peerId, guid, JSON.stringify(value));
    });
  }

  /**
   * Saves about to become visible: files that a crash may leave in the mailbox before their
   * UIDs are recorded. The next scan gives such a file the UID and GUID it was meant to have.
   */
  notePendingSaves(mailboxId: number, saves: readonly { basename: string; uid: number | undefined; guid: string }[]): void {
    this.transaction(() => {
      const put = this.stmt('INSERT OR REPLACE INTO pending_saves (mailbox_id, basename, uid, guid) VALUES (?, ?, ?, ?)');
      for (const p of saves) put.run(mailboxId, p.basename, p.uid ?? null, p.guid);
    });
  }

  pendingSaves(mailboxId: number): Map<string, { uid: number | undefined; guid: string }> {
    const rows = this.stmt('SELECT basename, uid, guid FROM pending_saves WHERE mailbox_id = ?').all(mailboxId) as { basename: string; uid: number | null; guid: string }[];
    return new Map(rows.map((r) => [r.basename, { uid: r.uid ?? undefined, guid: r.guid }]));
  }

  clearPendingSaves(mailboxId: number, basenames?: readonly string[]): void {
    this.transaction(() => {
      if (!basenames) this.stmt('DELETE FROM pending_saves WHERE mailbox_id = ?').run(mailboxId);
      else for (const b of basenames) this.stmt('DELETE FROM pending_saves WHERE mailbox_id = ? AND basename = ?').run(mailboxId, b);
    });
  }

  /** Flags and keywords (JSON) both sides agreed on at the last sync with a peer, by message GUID. */
  syncedFlags(peerId: string, mailboxGuid: string, guids: readonly string[]): Map<string, string> {
    const out = new Map<string, string>();
    if (guids.length > 256) {
      // A first sync can ask about every message: one pass over the mailbox's rows beats a
      // lookup per GUID.
      const wanted = new Set(guids);
      const all = this.rawStmt('SELECT guid, flags FROM synced_flags WHERE peer_id = ? AND mailbox_guid = ?').all(peerId, mailboxGuid) as [string, string][];
      for (const [g, flags] of all) if (wanted.has(g)) out.set(g, flags);
      return out;
    }
    const get = this.stmt('SELECT flags FROM synced_flags WHERE peer_id = ? AND mailbox_guid = ? AND guid = ?');
    for (const g of guids) {
      const row = get.get(peerId, mailboxGuid, g) as { flags: string } | undefined;
      if (row) out.set(g, row.flags);
    }
    return out;
  }

  setSyncedFlags(peerId: string, mailboxGuid: string, entries: Iterable<{ guid: string; flags: string }>, replaceAll: boolean): void {
    this.transaction(() => {
      if (replaceAll) this.stmt('DELETE FROM synced_flags WHERE peer_id = ? AND mailbox_guid = ?').run(peerId, mailboxGuid);
      const put = this.stmt('INSERT OR REPLACE INTO synced_flags (peer_id, mailbox_guid, guid, flags) VALUES (?, ?, ?, ?)');
      for (const e of entries) put.run(peerId, mailboxGuid, e.guid, e.flags);
    });
  }

  /**
   * Compares the subscriptions a store just read with the set the index last saw and logs
   * what other programs (un)subscribed meanwhile, as changes of now.
   */
  noteSubscriptions(names: readonly MailboxName[]): void {
    const key = mailboxKey;
    const before = this.knownSubscriptions();
    const known = new Set(before.map(key));
    const now = new Set(names.map(key));
    if (known.size === now.size && [...now].every((k) => known.has(k))) return;
    const timestamp = Math.floor(Date.now() / 1000);
    for (const n of names) if (!known.has(key(n))) this.logMailboxChange({ type: 'subscribe', name: [...n], timestamp });
    for (const n of before) if (!now.has(key(n))) this.logMailboxChange({ type: 'unsubscribe', name: n, timestamp });
    this.setKnownSubscriptions(names);
  }

  /** The subscription set as the index last saw it, to notice edits made by other programs. */
  knownSubscriptions(): string[][] {
    return (this.stmt('SELECT name FROM subscriptions').all() as { name: string }[]).map(
      (r) => JSON.parse(r.name) as string[],
    );
  }

  setKnownSubscriptions(names: readonly MailboxName[]): void {
    this.transaction(() => {
      this.stmt('DELETE FROM subscriptions').run();
      const ins = this.stmt('INSERT OR IGNORE INTO subscriptions (name) VALUES (?)');
      for (const n of names) ins.run(JSON.stringify(n));
    });
  }
}

/**
 * A new index is created with the permissions of the directory it lives in, without execute
 * bits (0700 -> 0600), as Dovecot's index files are, instead of the caller's umask: it names
 * every mailbox and message file. SQLite gives its -wal and -shm files the database's mode.
 * An index that exists keeps its mode.
 */
function createPrivately(path: string, dir: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', statSync(dir).mode & 0o666);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  closeSync(fd);
}
