/**
 * The replication queues against Dovecot's replicator semantics: one entry per user however
 * many changes arrive, priorities taken in order (sync > high > low > full sync), a failing user
 * backed off by growing waits, never two syncs of one user at once, and all of it kept across a
 * restart. Every case runs against both queues: SQLite on disk, and PostgreSQL (a real server
 * started on loopback, each queue in a schema of its own). fast-check drives random histories.
 * What only a shared queue does (leases, concurrent claims) is in replication-queue-shared.test.ts.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { backoffDelay, MAX_BACKOFF_MS, nextSyncTime, type QueueTiming } from '../../src/replicator/next-sync-time.js';
import { PostgresReplicationQueue } from '../../src/replicator/postgres-replication-queue.js';
import { PRIORITIES, priorityRank, type ReplicationPriority } from '../../src/replicator/replication-priority.js';
import type { ReplicationQueue, SyncClaim } from '../../src/replicator/replication-queue.js';
import { SqliteReplicationQueue } from '../../src/replicator/sqlite-replication-queue.js';
import { startPostgres, type Postgres } from '../support/postgres.js';

const DAY = 86_400_000;
const BASE = 300_000;
const timing = { fullSyncIntervalMs: DAY, failureBackoffMs: BASE };
const T0 = 1_700_000_000_000;

/** Where a queue lives, and how a test opens it there: a directory for SQLite, a schema for PostgreSQL. */
interface Backend {
  name: string;
  /** A place no queue used yet. */
  fresh(): string;
  open(timing: QueueTiming, place?: string): Promise<ReplicationQueue>;
  /** Shared queues give back only the claims whose lease ran out; waits until a claim made now has. */
  outliveLeases(): Promise<void>;
  shared: boolean;
  /** fast-check runs: a PostgreSQL queue costs a schema and a connection each. */
  runs(n: number): number;
}

const LEASE_MS = 1000;
const dirs: string[] = [];
const opened: ReplicationQueue[] = [];
let pgsql: Postgres | undefined;
let schemas = 0;

before(async () => {
  pgsql = await startPostgres();
});
after(async () => {
  // A property that failed leaves its queue open: its sessions would keep the test process alive.
  for (const q of opened) await q.close();
  await pgsql?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sqlite: Backend = {
  name: 'SQLite',
  fresh() {
    const d = mkdtempSync(join(tmpdir(), 'mailferry-queue-'));
    dirs.push(d);
    return d;
  },
  async open(t, place) {
    const q = SqliteReplicationQueue.open(place ?? sqlite.fresh(), t);
    opened.push(q);
    return q;
  },
  outliveLeases: async () => {},
  shared: false,
  runs: (n) => n,
};

const postgres: Backend = {
  name: 'PostgreSQL',
  fresh: () => `q${++schemas}`,
  async open(t, place) {
    const q = await PostgresReplicationQueue.open({ connect: pgsql!.uri, schema: place ?? postgres.fresh(), timing: t, leaseMs: LEASE_MS });
    opened.push(q);
    return q;
  },
  outliveLeases: () => sleep(LEASE_MS + 100),
  shared: true,
  runs: (n) => Math.max(8, Math.ceil(n / 4)),
};

for (const b of [sqlite, postgres]) describe(`${b.name} queue`, () => cases(b));

/** A queue whose users have all had their first (full) sync at `at`: nothing is due until something changes. */
async function syncedQueue(b: Backend, users: string[], at = T0, place = b.fresh()) {
  const q = await b.open(timing, place);
  await q.setUsers(users, at);
  for (;;) {
    const c = await q.claim('test', at);
    if (!c) break;
    assert.equal(c.full, true, 'a first sync is a full one');
    await q.complete(c, { result: 'ok', at });
  }
  return q;
}

async function drain(q: ReplicationQueue, now: number, owner = 'test'): Promise<SyncClaim[]> {
  const out: SyncClaim[] = [];
  for (let c = await q.claim(owner, now); c; c = await q.claim(owner, now)) {
    out.push(c);
    // A queue that hands out a claimed user again would never run dry.
    assert.ok(out.length <= 1000, `claims never run out: ${out.slice(0, 5).map((x) => x.user).join(' ')} ...`);
  }
  return out;
}

const users = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);
const priority = fc.constantFrom<ReplicationPriority>('low', 'high', 'sync');

function cases(b: Backend): void {
  test('users never synced are due at once, in name order; after a full sync nothing is due until the full interval', async () => {
    const q = await b.open(timing);
    assert.deepEqual(await q.setUsers(['carol', 'alice', 'bob'], T0), { added: 3, removed: 0 });
    const first = await drain(q, T0);
    assert.deepEqual(first.map((c) => c.user), ['alice', 'bob', 'carol']);
    assert.ok(first.every((c) => c.full && c.priority === 'none'));
    assert.equal(await q.claim('test', T0), undefined, 'a claimed user is not handed out twice');
    for (const c of first) await q.complete(c, { result: 'ok', at: T0 + 10 });
    assert.equal(await q.claim('test', T0 + DAY - 1), undefined);
    assert.equal(await q.nextDue(), T0 + DAY);
    const full = await drain(q, T0 + DAY);
    assert.deepEqual(full.map((c) => [c.user, c.full, c.priority]), [['alice', true, 'none'], ['bob', true, 'none'], ['carol', true, 'none']]);
    const [s] = await q.list((u) => u === 'alice');
    assert.equal(s!.claimedBy, 'test');
    await q.close();
  });

  test('coalescing: any stream of changes leaves one entry a user, at the highest priority it carried', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ user: fc.nat({ max: 4 }), priority, dt: fc.nat({ max: 5000 }) }, { noNullPrototype: true }), { minLength: 1, maxLength: 200 }), async (events) => {
        const q = await syncedQueue(b, users(5));
        let now = T0 + 1000;
        const want = new Map<string, ReplicationPriority>();
        for (const e of events) {
          now += e.dt;
          assert.equal(await q.notify(`u${e.user}`, e.priority, now), true);
          const had = want.get(`u${e.user}`);
          if (had === undefined || priorityRank(e.priority) > priorityRank(had)) want.set(`u${e.user}`, e.priority);
        }
        const claims = await drain(q, now);
        assert.equal(claims.length, want.size, 'one sync a user, however many changes');
        for (const c of claims) {
          assert.equal(c.priority, want.get(c.user));
          assert.equal(c.full, false, 'a change is an incremental sync');
        }
        const counts = await q.counts(now);
        assert.equal(counts.running, want.size);
        assert.equal(counts.sync + counts.high + counts.low, 0);
        await q.close();
      }),
      { numRuns: b.runs(60) },
    );
  });

  test('priority order: changes of one moment are taken sync, then high, then low, then full syncs that came due with them', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom<ReplicationPriority>('none', 'low', 'high', 'sync'), { minLength: 2, maxLength: 12 }), fc.nat({ max: 14 * 60_000 }), async (prios, late) => {
        const names = users(prios.length);
        const q = await syncedQueue(b, names);
        // Every full sync comes due `late` ms before the changes arrive: within the low boost.
        const now = T0 + DAY + late;
        for (const [i, p] of prios.entries()) if (p !== 'none') await q.notify(names[i]!, p, now);
        const claims = await drain(q, now);
        assert.equal(claims.length, prios.length);
        const ranks = claims.map((c) => priorityRank(c.priority));
        assert.deepEqual(ranks, [...ranks].sort((a, b) => b - a), `taken as ${claims.map((c) => c.priority).join(' ')}`);
        await q.close();
      }),
      { numRuns: b.runs(60) },
    );
  });

  test('an old change is not starved by a stream of newer, higher ones (Dovecot\'s boosts)', async () => {
    const q = await syncedQueue(b, ['old', 'new']);
    await q.notify('old', 'low', T0 + 1000);
    // 16 minutes later a high change for another user: the low one is 16 min old, the boost 15 min.
    await q.notify('new', 'high', T0 + 1000 + 31 * 60_000);
    const [first] = await drain(q, T0 + 1000 + 31 * 60_000);
    assert.equal(first!.user, 'old');
    await q.close();
  });

  test('back-off: each failure in a row waits at least as long as the one before, from the base up to the cap; a sync request cuts through', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 14 }), fc.integer({ min: 1, max: 600_000 }), fc.constantFrom<ReplicationPriority>('low', 'high'), async (failures, base, hint) => {
        const dir = b.fresh();
        const q = await b.open({ fullSyncIntervalMs: DAY, failureBackoffMs: base });
        await q.setUsers(['u'], T0);
        let now = T0;
        let previous = 0;
        for (let i = 1; i <= failures; i++) {
          const c = await q.claim('test', now);
          assert.ok(c, `try ${i} is due at ${now}`);
          assert.equal(c.failures, i - 1);
          await q.complete(c, { result: 'failed', at: now, error: 'replica unreachable' });
          const [s] = await q.list();
          const wait = s!.nextTry! - now;
          assert.equal(wait, backoffDelay(i, base));
          assert.ok(wait >= previous && wait >= base && wait <= Math.max(base, MAX_BACKOFF_MS), `wait ${wait} after failure ${i}`);
          previous = wait;
          // A change does not bring the try forward: no busy loop on a replica that is down.
          await q.notify('u', hint, now + 1);
          assert.equal(await q.claim('test', s!.nextTry! - 1), undefined);
          assert.equal((await q.counts(s!.nextTry! - 1)).failedWaiting, 1);
          now = s!.nextTry!;
        }
        // An administrator's request is tried at once; success clears the failures.
        await q.notify('u', 'sync', now - 1);
        const c = await q.claim('test', now - 1);
        assert.ok(c);
        assert.equal(c.priority, 'sync');
        await q.complete(c, { result: 'ok', at: now });
        const [s] = await q.list();
        assert.equal(s!.failures, 0);
        assert.equal(s!.nextTry, undefined);
        await q.close();
      }),
      { numRuns: b.runs(40) },
    );
  });

  test('one sync per user: under any interleaving of changes, claims by several workers and completions, a user is never claimed twice at once, and a change made during a sync is never lost', async () => {
    type Op = { kind: 'notify'; user: number; priority: ReplicationPriority } | { kind: 'claim'; worker: number } | { kind: 'complete'; pick: number; fail: boolean };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('notify' as const), user: fc.nat({ max: 3 }), priority }, { noNullPrototype: true }),
      fc.record({ kind: fc.constant('claim' as const), worker: fc.nat({ max: 2 }) }, { noNullPrototype: true }),
      fc.record({ kind: fc.constant('complete' as const), pick: fc.nat(), fail: fc.boolean() }, { noNullPrototype: true }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 120 }), async (ops) => {
        // A base of 0: failures retry at once, so the model need not track time.
        const q = await b.open({ fullSyncIntervalMs: DAY, failureBackoffMs: 0 });
        await q.setUsers(users(4), T0);
        const running = new Map<string, SyncClaim>();
        /** Users with a change the queue has not handed to a sync yet. */
        const pending = new Set<string>(users(4));
        let now = T0;
        for (const o of ops) {
          now += 1;
          if (o.kind === 'notify') {
            await q.notify(`u${o.user}`, o.priority, now);
            pending.add(`u${o.user}`);
          } else if (o.kind === 'claim') {
            const c = await q.claim(`w${o.worker}`, now);
            if (c) {
              assert.ok(!running.has(c.user), `${c.user} claimed while its sync runs`);
              running.set(c.user, c);
              pending.delete(c.user);
            } else {
              assert.deepEqual([...pending].filter((u) => !running.has(u)), [], 'nothing pending is left unclaimed');
            }
          } else if (running.size > 0) {
            const c = [...running.values()][o.pick % running.size]!;
            running.delete(c.user);
            await q.complete(c, o.fail ? { result: 'failed', at: now, error: 'x' } : { result: 'ok', at: now });
            if (o.fail) pending.add(c.user);
          }
        }
        // Whatever was pending (changes during syncs included) is claimable once the syncs end.
        for (const c of running.values()) await q.complete(c, { result: 'ok', at: now });
        const left = new Set((await drain(q, now + 1)).map((c) => c.user));
        for (const u of pending) assert.ok(left.has(u), `${u}'s change was lost`);
        await q.close();
      }),
      { numRuns: b.runs(80) },
    );
  });

  test('restart: the queue, each user\'s history and a sync cut short by a crash survive; the unfinished sync runs again at its priority', async () => {
    const dir = b.fresh();
    let q = await syncedQueue(b, ['a', 'b', 'c'], T0, dir);
    await q.notify('a', 'high', T0 + 5);
    await q.notify('b', 'low', T0 + 6);
    const c = await q.claim('dead-process', T0 + 7);
    assert.equal(c!.user, 'a');
    await q.notify('c', 'sync', T0 + 8, { full: true });
    // The process dies here: no complete, no release (a shared queue's renewals end with it).
    if (b.shared) await q.close();
    q = await b.open(timing, dir);
    const before = await q.list();
    assert.deepEqual(before.map((u) => [u.user, u.priority, u.claimedBy ?? '-']), [['a', 'none', 'dead-process'], ['b', 'low', '-'], ['c', 'sync', '-']]);
    assert.ok(before.every((u) => u.lastFullSync === T0 && u.lastSuccess === T0));
    assert.equal(await q.releaseClaims('someone-else', T0 + 9), 0);
    if (b.shared) {
      assert.equal(await q.recoverClaims(T0 + 9), 0, 'a claim whose lease still runs is left to its owner');
      await b.outliveLeases();
      // The queue's own timer may have given it back first.
      assert.ok((await q.recoverClaims(T0 + 9)) <= 1);
    } else assert.equal(await q.recoverClaims(T0 + 9), 1);
    const [a] = await q.list((u) => u === 'a');
    assert.deepEqual([a?.claimedBy, a?.priority], [undefined, 'high'], "the dead process's claim is given back with its priority");
    const claims = await drain(q, T0 + 10);
    assert.deepEqual(claims.map((x) => [x.user, x.priority, x.full]), [['c', 'sync', true], ['a', 'high', false], ['b', 'low', false]]);
    await q.close();
  });

  test(`add, remove and the userdb set: removed users stay out across reloads, added users stay in, users gone from the userdb leave${b.shared ? ' when their sync finds them gone (a shared queue: another replicator may still list them)' : ''}; a user found gone leaves`, async () => {
    const q = await b.open(timing);
    await q.setUsers(['a', 'b', 'c'], T0);
    assert.equal(await q.removeUsers(['b', 'nobody']), 1);
    assert.equal(await q.notify('b', 'high', T0), false, 'a removed user takes no changes');
    assert.equal(await q.addUsers(['x'], T0), 1);
    assert.deepEqual(await q.setUsers(['a', 'b'], T0 + 1), { added: 0, removed: b.shared ? 0 : 1 });
    const stays = b.shared ? [['c', 'userdb']] : [];
    assert.deepEqual((await q.list()).map((u) => [u.user, u.origin]), [['a', 'userdb'], ...stays, ['x', 'added']]);
    assert.equal(await q.addUsers(['b'], T0 + 2), 1, 'add brings a removed user back');
    assert.deepEqual((await q.list()).map((u) => u.user), ['a', 'b', ...stays.map(([u]) => u), 'x']);
    assert.equal((await q.counts(T0 + 2)).total, 3 + stays.length);
    const claims = await drain(q, T0 + 3);
    for (const gone of ['x', ...stays.map(([u]) => u!)]) {
      await q.complete(claims.find((c) => c.user === gone)!, { result: 'gone', at: T0 + 4, error: `user ${gone}: no such user` });
    }
    assert.deepEqual((await q.list()).map((u) => u.user), ['a', 'b']);
    await q.close();
  });

  test('a forced full sync, a sync seen changing under it, and a new full interval', async () => {
    const q = await syncedQueue(b, ['a', 'b']);
    await q.notify('a', 'low', T0 + 1, { full: true });
    const [c] = await drain(q, T0 + 2);
    assert.deepEqual([c!.user, c!.full, c!.forcedFull], ['a', true, true]);
    await q.complete(c!, { result: 'ok', at: T0 + 3, again: true });
    const [again] = await drain(q, T0 + 4);
    assert.deepEqual([again!.user, again!.priority, again!.full], ['a', 'low', false], 'queued again, incrementally');
    await q.complete(again!, { result: 'ok', at: T0 + 5 });
    await q.reconfigure({ fullSyncIntervalMs: 60_000, failureBackoffMs: BASE });
    assert.equal(await q.nextDue(), T0 + 60_000, "b's full sync is due a minute after its first");
    await q.close();
  });
}

test('nextSyncTime is monotonic in the failure count and never earlier than a pending change asks', () => {
  fc.assert(
    fc.property(fc.constantFrom(...PRIORITIES), fc.nat({ max: 20 }), fc.integer({ min: 0, max: DAY }), (p, failures, at) => {
      const base = { priority: p, lastUpdate: T0, forceFull: false, lastFastSync: T0 - 1, lastFullSync: T0 - 1 };
      const t = (f: number) => nextSyncTime({ ...base, failures: f, nextTry: f > 0 ? at + T0 + backoffDelay(f, BASE) : undefined }, timing);
      assert.ok(t(failures + 1) >= t(failures));
    }),
  );
});
