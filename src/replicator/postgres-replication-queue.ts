/**
 * The replication queue in PostgreSQL, shared by replicator processes on any number of hosts
 * (`replicator_queue = postgresql://...`). Same rows, same due times and the same rules as the
 * SQLite queue (replication-queue.ts); what sharing adds:
 *
 * - Claims: the user due first is taken with `SELECT ... FOR UPDATE SKIP LOCKED` and marked
 *   claimed in the same transaction, so processes claiming at once take different users and
 *   never wait on each other's rows.
 * - A claim is a lease. The queue renews the claims it handed out (every third of
 *   replication_claim_lease) until they are completed or released; a claim whose lease ran out
 *   (its process was SIGKILLed, its host cut off) is given back, its priority kept, by the next
 *   claim or renewal of any process and by `recoverClaims`: the sync it stood for runs again
 *   elsewhere. Leases are timed by the database's clock, so hosts whose clocks differ agree on
 *   when one ran out. A process cut off from the database for longer than the lease while a sync
 *   runs may see that user synced elsewhere at the same time; the stores' own run locks keep the
 *   two syncs apart, and the late one's completion is not recorded (its claim is no longer its).
 * - `setUsers` adds and never removes: several replicators each give the users their own userdb
 *   lists, and one host listing fewer (another selection, a userdb that answered short) must not
 *   drop users another still serves. A user that leaves the userdb leaves the queue when its next
 *   sync finds it gone (a lookup that says unknown or noreplicate is the 'gone' outcome), at the
 *   latest at its next full sync. `replicator remove` works as with SQLite.
 * - The schema (replicator_queue_schema) is made on first use under an advisory lock, so
 *   replicators starting together do not trip over each other; its version is kept in a row.
 * - A replicator hears nothing of users other processes queue (their watchers' hints, control
 *   commands from any host): `nextDue` is never more than a second ahead, so an idle replicator
 *   looks for work once a second (one indexed query).
 * - Due times are computed by each process from its own settings: replicators sharing a queue
 *   should share replication_full_sync_interval and replication_failure_backoff.
 * - A connection that fails is given up and a new one taken; a statement that failed with the
 *   connection is tried again twice. A database still out of reach is logged once (and its
 *   return once): meanwhile changes (`notify`) and sync results (`complete`) are kept in memory
 *   and handed over when it is back (a result whose claim ran out of lease meanwhile and was
 *   taken by another replicator is not recorded: that sync runs again there), `claim` finds nothing and `nextDue` asks for a growing wait (1 s
 *   doubling to 30 s), so the daemon neither stops nor spins, and it is told (onReachable) when the renewals
 *   find the database back; reads (list, counts) fail with 75.
 *   A process that ends during an outage loses what it kept; the periodic check of the next
 *   start finds those changes again, and unrecorded syncs run again.
 */
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConnect } from '../config/userdb/sql-connect.js';
import { MailferryError } from '../model/errors.js';
import { backoffDelay, fullSyncDue, nextSyncTime, type QueueTiming } from './next-sync-time.js';
import { isConnectionLost, isRetryable, queueFailure } from './pg-queue-failure.js';
import { priorityOfRank, priorityRank, type ReplicationPriority } from './replication-priority.js';
import { claimOf, type QueueCounts, type ReplicaUserState, type ReplicationQueue, type SyncClaim, type SyncOutcome, type UserOrigin } from './replication-queue.js';

export const PG_SCHEMA_VERSION = 1;
/** Sessions one replicator holds at most: claims, completions, hints and control requests overlap. */
const POOL_SIZE = 4;
/** A statement that gets no answer within this long means the server or the network hangs. */
const QUERY_TIMEOUT_MS = 30_000;
/** Waits before trying a statement again whose connection failed. */
const RETRY_WAITS_MS = [200, 1000];
/** While the database is out of reach, the longest wait between two looks. */
const MAX_OUTAGE_WAIT_MS = 30_000;
/** The longest a replicator waits before it looks for users other processes queued. */
const POLL_MS = 1000;
/** Rows read and written per statement when every row is visited (reconfigure). */
const BATCH = 1000;

export interface PgQueueOptions {
  /** `replicator_queue`: a postgresql:// URI or a libpq key=value string. */
  connect: string;
  schema: string;
  timing: QueueTiming;
  leaseMs: number;
  /** One line about the queue's own troubles (renewals that fail, and their end). */
  log?: (line: string) => void;
  /**
   * Told when the database is reachable again and what was kept meanwhile is handed over: the
   * renewals notice within a third of a lease, while the daemon may be in an outage's long wait.
   */
  onReachable?: () => void;
}

export interface HeldClaim {
  owner: string;
  user: string;
  priority: ReplicationPriority;
  full: boolean;
  since: number;
  /** Below 0: its process stopped renewing it, and the next claim anywhere gives it back. */
  leaseLeftMs: number;
}

interface Row {
  username: string;
  origin: UserOrigin;
  removed: boolean;
  priority: number;
  last_update: number;
  force_full: boolean;
  last_fast_sync: number | null;
  last_full_sync: number | null;
  last_success: number | null;
  failures: number;
  next_try: number | null;
  last_error: string | null;
  claimed_by: string | null;
  claimed_at: number | null;
  claimed_priority: number | null;
  claimed_full: boolean | null;
  claim_id: number | null;
  lease_until: number | null;
  next_sync_at: number;
}

const opt = (v: number | null): number | undefined => (v === null ? undefined : v);

function stateOf(r: Row): ReplicaUserState {
  return {
    user: r.username,
    origin: r.origin,
    priority: priorityOfRank(r.priority),
    lastUpdate: r.last_update,
    forceFull: r.force_full,
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

/** bigint columns hold milliseconds, well inside a double's exact integers. */
const TYPES = {
  getTypeParser: (oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')),
} as unknown as pg.CustomTypesConfig;

/** The database's clock in ms: leases are timed by it, one clock for every host. */
const DB_NOW = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint';

export class PostgresReplicationQueue implements ReplicationQueue {
  readonly description: string;
  private readonly t: string;
  private readonly seq: string;
  private timing: QueueTiming;
  private readonly leaseMs: number;
  private readonly log: (line: string) => void;
  private readonly onReachable: () => void;
  /** Claims handed out here and not yet completed or released: the ones this process renews. */
  private readonly live = new Set<number>();
  private readonly claimIds = new WeakMap<SyncClaim, number>();
  private renewTimer: NodeJS.Timeout | undefined;
  /** Set while the database cannot be reached: since when, and the wait nextDue asks for before the next look. */
  private down: { since: number; waitMs: number } | undefined;
  /** Changes and sync results that came while the database was unreachable, handed over when it is back. */
  private readonly heldNotes = new Map<string, { priority: ReplicationPriority; at: number; full: boolean }>();
  private readonly heldResults: { claim: SyncClaim; outcome: SyncOutcome }[] = [];
  private handingOver: Promise<void> | undefined;
  private lastRecovery = 0;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly label: string,
    masked: string,
    private readonly schema: string,
    opts: PgQueueOptions,
  ) {
    this.t = `"${schema}".replica_users`;
    this.seq = `"${schema}".claim_ids`;
    this.description = `replicator queue ${masked} (schema ${schema})`;
    this.timing = opts.timing;
    this.leaseMs = opts.leaseMs;
    this.log = opts.log ?? (() => {});
    this.onReachable = opts.onReachable ?? (() => {});
  }

  /** Connects, makes the schema when it is not there yet, and starts renewing claims. Unreachable: 75, naming host and database. */
  static async open(opts: PgQueueOptions): Promise<PostgresReplicationQueue> {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(opts.schema)) throw new MailferryError('config', `replicator_queue_schema: '${opts.schema}' is not a lower-case SQL name`);
    const target = parseConnect(opts.connect, 'replicator_queue');
    if (target.kind !== 'pg') throw new MailferryError('config', `replicator_queue: ${target.masked} is not PostgreSQL: the SQLite queue is 'sqlite', kept in replicator_state_dir`);
    const s = target.settings;
    const pool = new pg.Pool({
      host: s.host,
      port: s.port,
      database: s.database,
      user: s.user,
      password: s.password,
      ssl: s.ssl,
      connectionTimeoutMillis: s.connectTimeoutMs,
      application_name: s.applicationName === 'mailferry' ? 'mailferry replicator' : s.applicationName,
      keepAlive: true,
      max: POOL_SIZE,
      idleTimeoutMillis: 60_000,
      query_timeout: QUERY_TIMEOUT_MS,
      types: TYPES,
    });
    // A session the server drops while idle in the pool is an 'error' event: without a listener it would end the process.
    pool.on('error', () => {});
    // A session cut off while checked out reports the loss to its statement and again as an 'error' event, which unheard would end the process.
    pool.on('connect', (client) => client.on('error', () => {}));
    const queue = new PostgresReplicationQueue(pool, target.label, target.masked, opts.schema, opts);
    try {
      await queue.migrate();
    } catch (err) {
      await pool.end().catch(() => {});
      throw queueFailure(err, target.label, 'opening the queue');
    }
    const every = Math.max(100, Math.floor(opts.leaseMs / 3));
    queue.renewTimer = setInterval(() => void queue.renew(), every);
    queue.renewTimer.unref();
    return queue;
  }

  private async migrate(): Promise<void> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      // Two replicators starting at once would both try CREATE ... IF NOT EXISTS and one fail on the catalog's unique index.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mailferry replication queue ${this.schema}`]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      await c.query(`CREATE TABLE IF NOT EXISTS "${this.schema}".queue_meta (key text PRIMARY KEY, value text NOT NULL)`);
      const found = await c.query<{ value: string }>(`SELECT value FROM "${this.schema}".queue_meta WHERE key = 'schema_version'`);
      const version = found.rows.length ? Number(found.rows[0]!.value) : 0;
      if (version > PG_SCHEMA_VERSION) {
        throw new MailferryError('config', `replicator_queue: ${this.label}: schema ${this.schema} was made by a newer mailferry (queue schema ${version}, this one knows ${PG_SCHEMA_VERSION})`);
      }
      if (version < PG_SCHEMA_VERSION) {
        await c.query(`
          CREATE TABLE IF NOT EXISTS ${this.t} (
            username text COLLATE "C" PRIMARY KEY,
            origin text NOT NULL,
            removed boolean NOT NULL DEFAULT false,
            priority smallint NOT NULL DEFAULT 0,
            last_update bigint NOT NULL DEFAULT 0,
            force_full boolean NOT NULL DEFAULT false,
            last_fast_sync bigint,
            last_full_sync bigint,
            last_success bigint,
            failures integer NOT NULL DEFAULT 0,
            next_try bigint,
            last_error text,
            claimed_by text,
            claimed_at bigint,
            claimed_priority smallint,
            claimed_full boolean,
            claim_id bigint,
            lease_until bigint,
            next_sync_at bigint NOT NULL DEFAULT 0
          );
          CREATE INDEX IF NOT EXISTS replica_users_due ON ${this.t} (next_sync_at, priority DESC, username) WHERE claimed_by IS NULL AND NOT removed;
          CREATE INDEX IF NOT EXISTS replica_users_lease ON ${this.t} (lease_until) WHERE claimed_by IS NOT NULL;
          CREATE SEQUENCE IF NOT EXISTS ${this.seq};
        `);
        await c.query(`INSERT INTO "${this.schema}".queue_meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [String(PG_SCHEMA_VERSION)]);
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }

  /** `fn` in one transaction; run again when the connection failed under it, else the error as the run reports it. */
  private async tx<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new MailferryError('tempfail', `${this.description} is closed`);
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient | undefined;
      try {
        client = await this.pool.connect();
        await client.query('BEGIN');
        const out = await fn(client);
        await client.query('COMMIT');
        client.release();
        return out;
      } catch (err) {
        if (client) {
          const lost = isConnectionLost(err);
          if (!lost) await client.query('ROLLBACK').catch(() => {});
          client.release(lost ? true : undefined);
        }
        if (!isRetryable(err) || attempt >= RETRY_WAITS_MS.length || this.closed) throw queueFailure(err, this.label, what);
        await sleep(RETRY_WAITS_MS[attempt]!);
      }
    }
  }

  private async rowForUpdate(c: pg.PoolClient, user: string): Promise<Row | undefined> {
    return (await c.query<Row>(`SELECT * FROM ${this.t} WHERE username = $1 FOR UPDATE`, [user])).rows[0];
  }

  /** Writes the fields that change and the due time they give. */
  private async save(c: pg.PoolClient, r: Row): Promise<void> {
    r.next_sync_at = nextSyncTime(stateOf(r), this.timing);
    await c.query(
      `UPDATE ${this.t} SET removed = $2, priority = $3, last_update = $4, force_full = $5, last_fast_sync = $6, last_full_sync = $7,
        last_success = $8, failures = $9, next_try = $10, last_error = $11, claimed_by = $12, claimed_at = $13, claimed_priority = $14,
        claimed_full = $15, claim_id = $16, lease_until = $17, next_sync_at = $18 WHERE username = $1`,
      [r.username, r.removed, r.priority, r.last_update, r.force_full, r.last_fast_sync, r.last_full_sync, r.last_success, r.failures, r.next_try, r.last_error,
        r.claimed_by, r.claimed_at, r.claimed_priority, r.claimed_full, r.claim_id, r.lease_until, r.next_sync_at],
    );
  }

  async setUsers(users: Iterable<string>, now: number): Promise<{ added: number; removed: number }> {
    // Sorted, so two replicators inserting the same names take their locks in one order and never deadlock.
    const names = [...new Set(users)].sort();
    let added = 0;
    for (let i = 0; i < names.length; i += BATCH) {
      const chunk = names.slice(i, i + BATCH);
      added += await this.tx('adding the userdb users', async (c) =>
        (await c.query(`INSERT INTO ${this.t} (username, origin, last_update, next_sync_at) SELECT u, 'userdb', $2, 0 FROM unnest($1::text[]) AS u ON CONFLICT (username) DO NOTHING`, [chunk, now])).rowCount ?? 0,
      );
    }
    return { added, removed: 0 };
  }

  async addUsers(users: readonly string[], now: number): Promise<number> {
    return this.tx('adding users', async (c) => {
      let added = 0;
      for (const user of [...new Set(users)].sort()) {
        const inserted = await c.query(`INSERT INTO ${this.t} (username, origin, last_update, next_sync_at) VALUES ($1, 'added', $2, 0) ON CONFLICT (username) DO NOTHING`, [user, now]);
        if (inserted.rowCount === 1) {
          added++;
          continue;
        }
        const r = await this.rowForUpdate(c, user);
        if (r?.removed) {
          r.removed = false;
          await this.save(c, r);
          added++;
        }
      }
      return added;
    });
  }

  async removeUsers(users: readonly string[]): Promise<number> {
    return this.tx('removing users', async (c) => {
      let removed = 0;
      for (const user of [...new Set(users)].sort()) {
        const r = await this.rowForUpdate(c, user);
        if (r === undefined || r.removed) continue;
        // One the userdb lists must stay known as removed, or the next start would bring it back.
        if (r.origin === 'added') await c.query(`DELETE FROM ${this.t} WHERE username = $1`, [user]);
        else {
          r.removed = true;
          await this.save(c, r);
        }
        removed++;
      }
      return removed;
    });
  }

  async notify(user: string, priority: ReplicationPriority, now: number, options: { full?: boolean } = {}): Promise<boolean> {
    try {
      // While the database is out of reach changes are kept at once; the hand-over finds out when it is back.
      if (this.down === undefined) return await this.notifyNow(user, priority, now, Boolean(options.full));
    } catch (err) {
      if (!this.unreachable(err)) throw err;
    }
    // Kept, as the change would be in the queue: it is handed over when the database is back.
    const had = this.heldNotes.get(user);
    this.heldNotes.set(user, {
      priority: had && priorityRank(had.priority) >= priorityRank(priority) ? had.priority : priority,
      at: had ? Math.min(had.at, now) : now,
      full: Boolean(options.full) || (had?.full ?? false),
    });
    return true;
  }

  private async notifyNow(user: string, priority: ReplicationPriority, now: number, full: boolean): Promise<boolean> {
    const options = { full };
    return this.tx('queueing a change', async (c) => {
      const r = await this.rowForUpdate(c, user);
      if (r === undefined || r.removed) return false;
      let changed = false;
      if (priorityRank(priority) > r.priority) {
        r.priority = priorityRank(priority);
        r.last_update = now;
        changed = true;
      }
      if (options.full && !r.force_full) {
        r.force_full = true;
        if (r.priority === 0) r.last_update = now;
        changed = true;
      }
      if (changed) await this.save(c, r);
      return true;
    });
  }

  async claim(owner: string, now: number): Promise<SyncClaim | undefined> {
    try {
      if (this.down !== undefined) await this.handOver();
      return await this.claimNow(owner, now);
    } catch (err) {
      // Nothing can be claimed from a database out of reach; nextDue says when to look again.
      if (this.unreachable(err)) return undefined;
      throw err;
    }
  }

  private async claimNow(owner: string, now: number): Promise<SyncClaim | undefined> {
    // Claims left by processes that are gone come back before the next user is chosen (an indexed read when there are none).
    await this.recoverExpired();
    // The claim is renewed from the moment it is written (a renewal or recovery between the COMMIT
    // and this function's return must see it as this process's), and forgotten if that COMMIT is
    // not known to have happened: one whose answer was lost may still stand on the server, and if
    // it stayed here it would be renewed for ever with no sync behind it, the user never synced
    // again. Forgotten, its lease runs out and it comes back, to this process or another.
    let taken: number | undefined;
    const forget = () => {
      if (taken !== undefined) this.live.delete(taken);
      taken = undefined;
    };
    try {
      return await this.tx('claiming a user', async (c) => {
        forget();
        return this.takeDue(c, owner, now, (id) => {
          taken = id;
          this.live.add(id);
        });
      });
    } catch (err) {
      forget();
      throw err;
    }
  }

  /** The user due first marked as claimed by `owner` in `c`'s transaction; `written` is told the claim's id before the COMMIT. */
  private async takeDue(c: pg.PoolClient, owner: string, now: number, written: (id: number) => void): Promise<SyncClaim | undefined> {
    const r = (
      await c.query<Row>(
        `SELECT * FROM ${this.t} WHERE claimed_by IS NULL AND NOT removed AND next_sync_at <= $1
         ORDER BY next_sync_at, priority DESC, username LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [now],
      )
    ).rows[0];
    if (r === undefined) return undefined;
    const state = stateOf(r);
    const claim = claimOf(state, owner, now, this.timing);
    const { rows } = await c.query<{ claim_id: number }>(
      `UPDATE ${this.t} SET claimed_by = $2, claimed_at = $3, claimed_priority = priority, claimed_full = force_full, priority = 0, force_full = false,
        claim_id = nextval('${this.seq}'), lease_until = ${DB_NOW} + $4 WHERE username = $1 RETURNING claim_id`,
      [r.username, owner, now, this.leaseMs],
    );
    const id = rows[0]!.claim_id;
    this.claimIds.set(claim, id);
    written(id);
    return claim;
  }

  /** A claim's pending work back in the row: its priority (kept from when it was raised, or the claim's time) and a forced full sync. */
  private giveBack(r: Row): void {
    if ((r.claimed_priority ?? 0) > r.priority) {
      r.priority = r.claimed_priority!;
      r.last_update = r.claimed_at ?? r.last_update;
    }
    if (r.claimed_full) r.force_full = true;
    if (r.claim_id !== null) this.live.delete(r.claim_id);
    r.claimed_by = null;
    r.claimed_at = null;
    r.claimed_priority = null;
    r.claimed_full = null;
    r.claim_id = null;
    r.lease_until = null;
  }

  async complete(claim: SyncClaim, outcome: SyncOutcome): Promise<void> {
    try {
      if (this.down === undefined) return await this.completeNow(claim, outcome);
    } catch (err) {
      if (!this.unreachable(err)) throw err;
    }
    // The claim stays this process's (its lease renewed once the database is back) until the result is recorded.
    this.heldResults.push({ claim, outcome });
  }

  private async completeNow(claim: SyncClaim, outcome: SyncOutcome): Promise<void> {
    const id = this.claimIds.get(claim);
    await this.tx('recording a sync', async (c) => {
      const r = await this.rowForUpdate(c, claim.user);
      // Released or taken over meanwhile (or removed): the claim is no longer this sync's to complete.
      if (r === undefined || r.claimed_by !== claim.owner || r.claimed_at !== claim.claimedAt || (id !== undefined && r.claim_id !== id)) return;
      if (outcome.result === 'gone') {
        await c.query(`DELETE FROM ${this.t} WHERE username = $1`, [claim.user]);
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
        r.claim_id = null;
        r.lease_until = null;
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
      await this.save(c, r);
    });
    if (id !== undefined) this.live.delete(id);
  }

  async releaseClaims(owner: string, _now: number): Promise<number> {
    return this.giveBackWhere('giving back claims', 'claimed_by = $1', [owner], false);
  }

  async recoverClaims(_now: number): Promise<number> {
    return this.recoverExpired();
  }

  /** Gives back every claim whose lease ran out; rows another process is working on are left to it. */
  private async recoverExpired(): Promise<number> {
    this.lastRecovery = Date.now();
    return this.giveBackWhere('recovering expired claims', `claimed_by IS NOT NULL AND lease_until < ${DB_NOW}`, [], true);
  }

  private async giveBackWhere(what: string, where: string, values: unknown[], skipLocked: boolean): Promise<number> {
    return this.tx(what, async (c) => {
      const { rows } = await c.query<Row>(`SELECT * FROM ${this.t} WHERE ${where} ORDER BY username FOR UPDATE${skipLocked ? ' SKIP LOCKED' : ''}`, values);
      for (const r of rows) {
        this.giveBack(r);
        await this.save(c, r);
      }
      return rows.length;
    });
  }

  /** Pushes the lease of every claim still running here forward, and hands over what waited for the database. */
  private async renew(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.live.size > 0) {
        const ids = [...this.live];
        await this.tx('renewing claims', (c) => c.query(`UPDATE ${this.t} SET lease_until = ${DB_NOW} + $2 WHERE claim_id = ANY($1::bigint[])`, [ids, this.leaseMs]));
      }
      await this.handOver();
      if (Date.now() - this.lastRecovery >= this.leaseMs / 3) await this.recoverExpired();
    } catch (err) {
      if (!this.closed && !this.unreachable(err)) this.log(`${(err as Error).message}`);
    }
  }

  /**
   * True (and logged once, when it starts) when `err` means the database is out of reach; the
   * caller keeps what it can. Anything else (a refused login, a missing privilege) is the
   * caller's to report.
   */
  private unreachable(err: unknown): boolean {
    if (!(err instanceof MailferryError) || err.kind !== 'tempfail' || this.closed) return false;
    if (this.down === undefined) {
      this.down = { since: Date.now(), waitMs: 1000 };
      this.log(`${err.message}; trying again with growing waits (30 s at most), changes and sync results kept until it is back; running syncs keep their claims ${this.leaseMs / 1000} s without it`);
    }
    return true;
  }

  /** Changes and results kept while the database was out of reach, recorded now; the end of the outage logged. */
  private handOver(): Promise<void> {
    if (this.handingOver !== undefined) return this.handingOver;
    if (this.down === undefined && this.heldNotes.size === 0 && this.heldResults.length === 0) return Promise.resolve();
    const run = (async () => {
      if (this.down !== undefined) await this.tx('reaching the database', (c) => c.query('SELECT 1'));
      const results = this.heldResults.length;
      const notes = this.heldNotes.size;
      while (this.heldResults.length > 0) {
        const { claim, outcome } = this.heldResults[0]!;
        await this.completeNow(claim, outcome);
        this.heldResults.shift();
      }
      for (const [user, n] of [...this.heldNotes]) {
        await this.notifyNow(user, n.priority, n.at, n.full);
        // A change that came meanwhile is kept for the next hand-over.
        if (this.heldNotes.get(user) === n) this.heldNotes.delete(user);
      }
      if (this.down !== undefined) {
        this.log(`${this.description}: reachable again after ${((Date.now() - this.down.since) / 1000).toFixed(1)} s; ${notes} changes and ${results} sync results kept meanwhile handed over`);
        this.down = undefined;
        this.onReachable();
      }
    })();
    this.handingOver = run;
    const done = () => {
      if (this.handingOver === run) this.handingOver = undefined;
    };
    run.then(done, done);
    return run;
  }

  async nextDue(): Promise<number | undefined> {
    try {
      if (this.down !== undefined) await this.handOver();
      return await this.nextDueNow();
    } catch (err) {
      if (!this.unreachable(err)) throw err;
      // The daemon sleeps until this: a growing wait, so an outage is not a busy loop.
      const wait = this.down!.waitMs;
      this.down!.waitMs = Math.min(MAX_OUTAGE_WAIT_MS, wait * 2);
      return Date.now() + wait;
    }
  }

  private async nextDueNow(): Promise<number | undefined> {
    // A claim held elsewhere counts as due when its lease runs out: if its process died, that is when it comes back.
    // And users queued by other processes (their watchers, control commands from any host) are
    // heard of by nobody here: a replicator with nothing due looks again within POLL_MS.
    const { rows } = await this.tx('reading the next due time', (c) =>
      c.query<{ due: number | null }>(
        `SELECT least(min(next_sync_at) FILTER (WHERE claimed_by IS NULL), min(lease_until) FILTER (WHERE claimed_by IS NOT NULL AND NOT (claim_id = ANY($1::bigint[])))) AS due
         FROM ${this.t} WHERE NOT removed`,
        [[...this.live]],
      ),
    );
    return Math.min(rows[0]?.due ?? Infinity, Date.now() + POLL_MS);
  }

  async list(matches?: (user: string) => boolean): Promise<ReplicaUserState[]> {
    const { rows } = await this.tx('listing users', (c) => c.query<Row>(`SELECT * FROM ${this.t} WHERE NOT removed ORDER BY username`));
    const out: ReplicaUserState[] = [];
    for (const r of rows) if (matches === undefined || matches(r.username)) out.push(stateOf(r));
    return out;
  }

  /** Every claim of the fleet: who holds it (host:pid), what the sync took, and how long its lease has to run (database clock). */
  async claims(): Promise<HeldClaim[]> {
    const { rows } = await this.tx('listing claims', (c) =>
      c.query<Row & { lease_left: number }>(`SELECT *, lease_until - ${DB_NOW} AS lease_left FROM ${this.t} WHERE claimed_by IS NOT NULL ORDER BY claimed_by, claimed_at, username`),
    );
    return rows.map((r) => ({
      owner: r.claimed_by!,
      user: r.username,
      priority: priorityOfRank(r.claimed_priority ?? 0),
      full: Boolean(r.claimed_full) || fullSyncDue({ forceFull: false, lastFullSync: opt(r.last_full_sync) }, r.claimed_at ?? 0, this.timing),
      since: r.claimed_at ?? 0,
      leaseLeftMs: r.lease_left,
    }));
  }

  async counts(now: number): Promise<QueueCounts> {
    const c: QueueCounts = { sync: 0, high: 0, low: 0, failedDue: 0, fullDue: 0, failedWaiting: 0, running: 0, total: 0 };
    const { rows } = await this.tx('counting users', (client) =>
      client.query<{ priority: number; failing: boolean; due: boolean; running: boolean; n: number }>(
        `SELECT priority, failures > 0 AS failing, next_sync_at <= $1 AS due, claimed_by IS NOT NULL AS running, count(*)::integer AS n
         FROM ${this.t} WHERE NOT removed GROUP BY 1, 2, 3, 4`,
        [now],
      ),
    );
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
    let after = '';
    for (;;) {
      const last = await this.tx('recomputing due times', async (c) => {
        const { rows } = await c.query<Row>(`SELECT * FROM ${this.t} WHERE username > $1 ORDER BY username LIMIT ${BATCH} FOR UPDATE`, [after]);
        if (rows.length === 0) return undefined;
        await c.query(`UPDATE ${this.t} AS t SET next_sync_at = v.due FROM unnest($1::text[], $2::bigint[]) AS v(name, due) WHERE t.username = v.name`, [
          rows.map((r) => r.username),
          rows.map((r) => nextSyncTime(stateOf(r), timing)),
        ]);
        return rows[rows.length - 1]!.username;
      });
      if (last === undefined) return;
      after = last;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    await this.pool.end().catch(() => {});
  }
}
