/**
 * The replication queue in SQLite, beside mailferry's other state: one machine, one replicator
 * process (the daemon lock sees to that), nothing to set up. Each row carries its due time,
 * computed by `nextSyncTime` whenever the row changes, so taking the next user is one indexed
 * read however many users there are. WAL and synchronous=NORMAL: a crash loses at most the last
 * transactions, which only means a sync runs again.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fsError, MailferryError } from '../model/errors.js';
import { backoffDelay, nextSyncTime, type QueueTiming } from './next-sync-time.js';
import { priorityOfRank, priorityRank, type ReplicationPriority } from './replication-priority.js';
import { claimOf, type QueueCounts, type ReplicaUserState, type ReplicationQueue, type SyncClaim, type SyncOutcome, type UserOrigin } from './replication-queue.js';

const SCHEMA_VERSION = 1;
export const QUEUE_FILE = 'replicator.sqlite';

interface Row {
  user: string;
  origin: UserOrigin;
  removed: number;
  priority: number;
  last_update: number;
  force_full: number;
  last_fast_sync: number | null;
  last_full_sync: number | null;
  last_success: number | null;
  failures: number;
  next_try: number | null;
  last_error: string | null;
  claimed_by: string | null;
  claimed_at: number | null;
  claimed_priority: number | null;
  claimed_full: number | null;
  next_sync_at: number;
}

const opt = (v: number | null): number | undefined => (v === null ? undefined : v);

function stateOf(r: Row): ReplicaUserState {
  return {
    user: r.user,
    origin: r.origin,
    priority: priorityOfRank(r.priority),
    lastUpdate: r.last_update,
    forceFull: r.force_full === 1,
    lastFastSync: opt(r.last_fast_sync),
    lastFullSync: opt(r.last_full_sync),
    lastSuccess: opt(r.last_success),
    failures: r.failures,
    nextTry: opt(r.next_try),
    lastError: r.last_error ?? undefined,
    claimedBy: r.claimed_by ?? undefined,
    claimedAt: opt(r.claimed_at),
    nextSyncAt: r.next_sync_at,
  };
}

export class SqliteReplicationQueue implements ReplicationQueue {
  readonly description: string;
  private readonly db: Database.Database;
  private timing: QueueTiming;

  private constructor(db: Database.Database, path: string, timing: QueueTiming) {
    this.db = db;
    this.description = `replicator queue ${path}`;
    this.timing = timing;
  }

  /** Opens (creating) the queue in `dir`, made 0700 when new: it names every user. */
  static open(dir: string, timing: QueueTiming): SqliteReplicationQueue {
    const path = join(dir, QUEUE_FILE);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw fsError(err, `replicator state directory ${dir}`);
    }
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: 5000 });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      throw new MailferryError(code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY' ? 'permission' : 'tempfail', `${path}: cannot open the replicator queue: ${(err as Error).message}`, { cause: err });
    }
    const queue = new SqliteReplicationQueue(db, path, timing);
    queue.migrate(path);
    return queue;
  }

  private migrate(path: string): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      this.db.close();
      throw new MailferryError('config', `${path} was written by a newer mailferry (queue schema ${version}, this one knows ${SCHEMA_VERSION})`);
    }
    if (version === SCHEMA_VERSION) return;
    this.db.exec(`
      CREATE TABLE replica_users (
        user TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        removed INTEGER NOT NULL DEFAULT 0,
        priority INTEGER NOT NULL DEFAULT 0,
        last_update INTEGER NOT NULL DEFAULT 0,
        force_full INTEGER NOT NULL DEFAULT 0,
        last_fast_sync INTEGER,
        last_full_sync INTEGER,
        last_success INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        next_try INTEGER,
        last_error TEXT,
        claimed_by TEXT,
        claimed_at INTEGER,
        claimed_priority INTEGER,
        claimed_full INTEGER,
        next_sync_at INTEGER NOT NULL DEFAULT 0,
        seen INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;
      CREATE INDEX replica_users_due ON replica_users (next_sync_at, priority DESC, user) WHERE claimed_by IS NULL AND removed = 0;
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
  }

  private row(user: string): Row | undefined {
    return this.db.prepare<[string], Row>('SELECT * FROM replica_users WHERE user = ?').get(user);
  }

  /** Writes the fields that change and the due time they give. */
  private save(r: Row): void {
    r.next_sync_at = nextSyncTime(stateOf(r), this.timing);
    this.db
      .prepare(`UPDATE replica_users SET removed = @removed, priority = @priority, last_update = @last_update, force_full = @force_full,
        last_fast_sync = @last_fast_sync, last_full_sync = @last_full_sync, last_success = @last_success, failures = @failures,
        next_try = @next_try, last_error = @last_error, claimed_by = @claimed_by, claimed_at = @claimed_at,
        claimed_priority = @claimed_priority, claimed_full = @claimed_full, next_sync_at = @next_sync_at WHERE user = @user`)
      .run(r);
  }

  private insert(user: string, origin: UserOrigin, now: number, seen: number): boolean {
    return this.db.prepare('INSERT OR IGNORE INTO replica_users (user, origin, last_update, next_sync_at, seen) VALUES (?, ?, ?, 0, ?)').run(user, origin, now, seen).changes === 1;
  }

  async setUsers(users: Iterable<string>, now: number): Promise<{ added: number; removed: number }> {
    return this.db.transaction(() => {
      const gen = ((this.db.prepare('SELECT max(seen) AS g FROM replica_users').get() as { g: number | null }).g ?? 0) + 1;
      const touch = this.db.prepare('UPDATE replica_users SET seen = ? WHERE user = ?');
      let added = 0;
      for (const user of users) {
        if (this.insert(user, 'userdb', now, gen)) added++;
        else touch.run(gen, user);
      }
      const removed = this.db.prepare("DELETE FROM replica_users WHERE origin = 'userdb' AND seen <> ?").run(gen).changes;
      return { added, removed };
    })();
  }

  async addUsers(users: readonly string[], now: number): Promise<number> {
    return this.db.transaction(() => {
      let added = 0;
      for (const user of users) {
        const r = this.row(user);
        if (r === undefined) {
          this.insert(user, 'added', now, 0);
          added++;
        } else if (r.removed === 1) {
          r.removed = 0;
          this.save(r);
          added++;
        }
      }
      return added;
    })();
  }

  async removeUsers(users: readonly string[]): Promise<number> {
    return this.db.transaction(() => {
      let removed = 0;
      for (const user of users) {
        const r = this.row(user);
        if (r === undefined || r.removed === 1) continue;
        // One the userdb lists must stay known as removed, or the next reload would bring it back.
        if (r.origin === 'added') this.db.prepare('DELETE FROM replica_users WHERE user = ?').run(user);
        else {
          r.removed = 1;
          this.save(r);
        }
        removed++;
      }
      return removed;
    })();
  }

  async notify(user: string, priority: ReplicationPriority, now: number, options: { full?: boolean } = {}): Promise<boolean> {
    return this.db.transaction(() => {
      const r = this.row(user);
      if (r === undefined || r.removed === 1) return false;
      let changed = false;
      if (priorityRank(priority) > r.priority) {
        r.priority = priorityRank(priority);
        r.last_update = now;
        changed = true;
      }
      if (options.full && r.force_full === 0) {
        r.force_full = 1;
        if (r.priority === 0) r.last_update = now;
        changed = true;
      }
      if (changed) this.save(r);
      return true;
    })();
  }

  async claim(owner: string, now: number): Promise<SyncClaim | undefined> {
    return this.db.transaction(() => {
      const r = this.db
        .prepare<[number], Row>('SELECT * FROM replica_users WHERE claimed_by IS NULL AND removed = 0 AND next_sync_at <= ? ORDER BY next_sync_at, priority DESC, user LIMIT 1')
        .get(now);
      if (r === undefined) return undefined;
      const state = stateOf(r);
      const claim = claimOf(state, owner, now, this.timing);
      this.db
        .prepare('UPDATE replica_users SET claimed_by = ?, claimed_at = ?, claimed_priority = priority, claimed_full = force_full, priority = 0, force_full = 0 WHERE user = ?')
        .run(owner, now, r.user);
      return claim;
    })();
  }

  /** A claim's pending work back in the row: its priority (kept from when it was raised, or the claim's time) and a forced full sync. */
  private giveBack(r: Row): void {
    if ((r.claimed_priority ?? 0) > r.priority) {
      r.priority = r.claimed_priority!;
      r.last_update = r.claimed_at ?? r.last_update;
    }
    if (r.claimed_full === 1) r.force_full = 1;
    r.claimed_by = null;
    r.claimed_at = null;
    r.claimed_priority = null;
    r.claimed_full = null;
  }

  async complete(claim: SyncClaim, outcome: SyncOutcome): Promise<void> {
    this.db.transaction(() => {
      const r = this.row(claim.user);
      // Released meanwhile (or removed): the claim is no longer this sync's to complete.
      if (r === undefined || r.claimed_by !== claim.owner || r.claimed_at !== claim.claimedAt) return;
      if (outcome.result === 'gone') {
        this.db.prepare('DELETE FROM replica_users WHERE user = ?').run(claim.user);
        return;
      }
      if (outcome.result === 'failed') {
        this.giveBack(r);
        r.failures += 1;
        r.next_try = outcome.at + backoffDelay(r.failures, this.timing.failureBackoffMs);
        r.last_error = outcome.error;
      } else {
        r.claimed_by = null;
        r.claimed_at = null;
        r.claimed_priority = null;
        r.claimed_full = null;
        r.last_fast_sync = claim.claimedAt;
        if (claim.full) r.last_full_sync = claim.claimedAt;
        r.last_success = outcome.at;
        r.failures = 0;
        r.next_try = null;
        r.last_error = null;
        if (outcome.again && r.priority < priorityRank('low')) {
          r.priority = priorityRank('low');
          r.last_update = outcome.at;
        }
      }
      this.save(r);
    })();
  }

  async releaseClaims(owner: string, _now: number): Promise<number> {
    return this.giveBackAll(this.db.prepare<[string], Row>('SELECT * FROM replica_users WHERE claimed_by = ?').all(owner));
  }

  async recoverClaims(_now: number): Promise<number> {
    return this.giveBackAll(this.db.prepare<[], Row>('SELECT * FROM replica_users WHERE claimed_by IS NOT NULL').all());
  }

  private giveBackAll(rows: Row[]): number {
    return this.db.transaction(() => {
      for (const r of rows) {
        this.giveBack(r);
        this.save(r);
      }
      return rows.length;
    })();
  }

  async nextDue(): Promise<number | undefined> {
    const r = this.db.prepare('SELECT min(next_sync_at) AS due FROM replica_users WHERE claimed_by IS NULL AND removed = 0').get() as { due: number | null };
    return r.due ?? undefined;
  }

  async list(matches?: (user: string) => boolean): Promise<ReplicaUserState[]> {
    const out: ReplicaUserState[] = [];
    for (const r of this.db.prepare<[], Row>('SELECT * FROM replica_users WHERE removed = 0 ORDER BY user').iterate()) {
      if (matches === undefined || matches(r.user)) out.push(stateOf(r));
    }
    return out;
  }

  async counts(now: number): Promise<QueueCounts> {
    const c: QueueCounts = { sync: 0, high: 0, low: 0, failedDue: 0, fullDue: 0, failedWaiting: 0, running: 0, total: 0 };
    const rows = this.db
      .prepare<[number], { priority: number; failing: number; due: number; running: number; n: number }>(
        `SELECT priority, failures > 0 AS failing, next_sync_at <= ? AS due, claimed_by IS NOT NULL AS running, count(*) AS n
         FROM replica_users WHERE removed = 0 GROUP BY 1, 2, 3, 4`,
      )
      .all(now);
    for (const r of rows) {
      c.total += r.n;
      if (r.running) c.running += r.n;
      else if (r.failing) {
        if (r.due) c.failedDue += r.n;
        else c.failedWaiting += r.n;
      } else if (r.priority > 0) c[priorityOfRank(r.priority) as 'sync' | 'high' | 'low'] += r.n;
      else if (r.due) c.fullDue += r.n;
    }
    return c;
  }

  async reconfigure(timing: QueueTiming): Promise<void> {
    this.timing = timing;
    this.db.transaction(() => {
      const update = this.db.prepare('UPDATE replica_users SET next_sync_at = ? WHERE user = ?');
      for (const r of this.db.prepare<[], Row>('SELECT * FROM replica_users').all()) update.run(nextSyncTime(stateOf(r), timing), r.user);
    })();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
