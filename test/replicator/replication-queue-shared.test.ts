/**
 * What only the shared (PostgreSQL) queue does, against a real server on loopback: queue
 * objects on separate connections claiming at once never hold one user together, under random
 * interleavings run concurrently; a claim is a lease its queue renews and that comes back to the
 * others, its priority kept, once its process is gone; replicators listing different users do
 * not drop each other's; two starting together make the schema once; an unreachable server, a
 * bad password, a newer schema and connections killed under a running queue, one of them just as
 * a claim's COMMIT reached the server.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { applySetting, DEFAULT_SETTINGS } from '../../src/config/settings.js';
import { MailferryError } from '../../src/model/errors.js';
import { isSharedQueue, openReplicationQueue } from '../../src/replicator/open-replication-queue.js';
import { SqliteReplicationQueue } from '../../src/replicator/sqlite-replication-queue.js';
import { PostgresReplicationQueue } from '../../src/replicator/postgres-replication-queue.js';
import type { ReplicationPriority } from '../../src/replicator/replication-priority.js';
import type { ReplicationQueue, SyncClaim } from '../../src/replicator/replication-queue.js';
import { startPostgres, type Postgres } from '../support/postgres.js';
import { relay } from './pg-relay.js';

const DAY = 86_400_000;
const timing = { fullSyncIntervalMs: DAY, failureBackoffMs: 0 };
const T0 = 1_700_000_000_000;
const LEASE_MS = 1000;

let pgsql: Postgres;
let schemas = 0;
const opened: ReplicationQueue[] = [];
const relays: { close(): Promise<void>; restore(): void }[] = [];

before(async () => {
  pgsql = await startPostgres();
});
after(async () => {
  for (const q of opened) await q.close();
  for (const r of relays) await r.close();
  await pgsql.stop();
});

async function open(schema: string, opts: { leaseMs?: number; log?: (l: string) => void; connect?: string } = {}): Promise<PostgresReplicationQueue> {
  const q = await PostgresReplicationQueue.open({ connect: opts.connect ?? pgsql.uri, schema, timing, leaseMs: opts.leaseMs ?? LEASE_MS, log: opts.log });
  opened.push(q);
  return q;
}

const users = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);

async function rejection(p: Promise<unknown>): Promise<MailferryError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MailferryError, `not a MailferryError: ${String(err)}`);
    return err;
  }
  assert.fail('did not fail');
}

test('three queues on separate connections, ops interleaved at random and run concurrently: a user is never claimed by two at once, and no change is lost', async () => {
  type Op = { kind: 'notify'; user: number; priority: ReplicationPriority } | { kind: 'claim' } | { kind: 'complete'; pick: number; fail: boolean };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('notify' as const), user: fc.nat({ max: 4 }), priority: fc.constantFrom<ReplicationPriority>('low', 'high', 'sync') }, { noNullPrototype: true }),
    fc.record({ kind: fc.constant('claim' as const) }, { noNullPrototype: true }),
    fc.record({ kind: fc.constant('complete' as const), pick: fc.nat(), fail: fc.boolean() }, { noNullPrototype: true }),
  );
  // Each step gives every process one op; the three run at the same time.
  const steps = fc.array(fc.tuple(op, op, op), { minLength: 1, maxLength: 30 });
  const queues = [0, 1, 2].map(() => undefined as PostgresReplicationQueue | undefined);
  await fc.assert(
    fc.asyncProperty(steps, async (history) => {
      const schema = `c${++schemas}`;
      for (let i = 0; i < 3; i++) queues[i] = await open(schema);
      const qs = queues as PostgresReplicationQueue[];
      try {
        await qs[0]!.setUsers(users(5), T0);
        /** user -> the claim running it; a user whose completion was sent may be claimed again before its promise settles. */
        const running = new Map<string, SyncClaim>();
        const completing = new Set<string>();
        const pending = new Set(users(5));
        let now = T0;
        for (const step of history) {
          now += 1;
          await Promise.all(
            step.map(async (o, p) => {
              const q = qs[p]!;
              if (o.kind === 'notify') {
                pending.add(`u${o.user}`);
                await q.notify(`u${o.user}`, o.priority, now);
              } else if (o.kind === 'claim') {
                const c = await q.claim(`p${p}`, now);
                if (!c) return;
                assert.ok(!running.has(c.user) || completing.has(c.user), `${c.user} claimed by p${p} while ${running.get(c.user)?.owner} syncs it`);
                running.set(c.user, c);
                completing.delete(c.user);
                pending.delete(c.user);
              } else {
                const mine = [...running.values()].filter((c) => c.owner === `p${p}` && !completing.has(c.user));
                if (mine.length === 0) return;
                const c = mine[o.pick % mine.length]!;
                completing.add(c.user);
                if (o.fail) pending.add(c.user);
                await q.complete(c, o.fail ? { result: 'failed', at: now, error: 'x' } : { result: 'ok', at: now });
                if (running.get(c.user) === c) {
                  running.delete(c.user);
                  completing.delete(c.user);
                }
              }
            }),
          );
        }
        for (const c of running.values()) await qs[Number(c.owner.slice(1))]!.complete(c, { result: 'ok', at: now });
        const left = new Set<string>();
        for (let c = await qs[1]!.claim('end', now + 1); c; c = await qs[1]!.claim('end', now + 1)) left.add(c.user);
        for (const u of pending) assert.ok(left.has(u), `${u}'s change was lost`);
      } finally {
        // Shrinking a failure opens many more: each run gives its sessions back.
        for (const q of qs) await q.close();
      }
    }),
    { numRuns: 25 },
  );
});

test('a claim is a lease: renewed while its queue lives, given back with its priority when its process is gone; its late completion is not recorded', async () => {
  const schema = `l${++schemas}`;
  const alive = await open(schema);
  const other = await open(schema);
  await alive.setUsers(['a', 'b'], T0);
  const first = [await alive.claim('alive', T0), await alive.claim('alive', T0)];
  for (const c of first) await alive.complete(c!, { result: 'ok', at: T0 });
  await alive.notify('a', 'high', T0 + 1);
  const held = await alive.claim('alive', T0 + 2);
  assert.equal(held?.user, 'a');
  // Three leases long the living queue keeps renewing: nobody else gets a, nothing is recovered.
  await sleep(3 * LEASE_MS);
  assert.equal(await other.recoverClaims(T0 + 3), 0);
  assert.equal(await other.claim('other', T0 + 3), undefined);
  assert.equal((await other.list((u) => u === 'a'))[0]?.claimedBy, 'alive');
  // What dsync-status shows of the fleet: every claim, its owner, what the sync took, its lease.
  const fleet = await other.claims();
  assert.deepEqual(fleet.map((c) => [c.owner, c.user, c.priority, c.full, c.since]), [['alive', 'a', 'high', false, T0 + 2]]);
  assert.ok(fleet[0]!.leaseLeftMs > 0 && fleet[0]!.leaseLeftMs <= LEASE_MS, `lease left ${fleet[0]!.leaseLeftMs} ms`);

  // The process dies: its renewals stop, its claim stays in the table.
  const dying = await open(schema);
  await dying.notify('b', 'sync', T0 + 4, { full: true });
  const lost = await dying.claim('dying', T0 + 5);
  assert.equal(lost?.user, 'b');
  await dying.close();
  assert.equal(await other.claim('other', T0 + 6), undefined, 'not before its lease runs out');
  const due = await other.nextDue();
  assert.ok(due !== undefined && due <= Date.now() + LEASE_MS, 'the lease end is when the others look again');
  await sleep(LEASE_MS + 200);
  const taken = await other.claim('other', T0 + 7);
  assert.deepEqual([taken?.user, taken?.priority, taken?.full, taken?.forcedFull], ['b', 'sync', true, true], 'the sync runs again as it was asked for');

  // The dead process's completion, had it come late, is not this sync's.
  await dying.close();
  const late = await open(schema);
  await late.complete(lost!, { result: 'failed', at: T0 + 8, error: 'late' });
  const [b] = await other.list((u) => u === 'b');
  assert.deepEqual([b?.claimedBy, b?.failures], ['other', 0]);
  await other.complete(taken!, { result: 'ok', at: T0 + 9 });
  await alive.complete(held!, { result: 'ok', at: T0 + 9 });
  assert.equal((await other.counts(T0 + 9)).running, 0);
});

test('replicators listing different users keep them all; a removed user stays removed whoever lists it', async () => {
  const schema = `s${++schemas}`;
  const [one, two] = [await open(schema), await open(schema)];
  assert.deepEqual(await one.setUsers(['a', 'b', 'c'], T0), { added: 3, removed: 0 });
  assert.deepEqual(await two.setUsers(['c', 'd'], T0), { added: 1, removed: 0 });
  assert.equal(await one.removeUsers(['b']), 1);
  assert.deepEqual(await one.setUsers(['a', 'b'], T0 + 1), { added: 0, removed: 0 });
  assert.deepEqual((await two.list()).map((u) => u.user), ['a', 'c', 'd']);
  // The same names from both at once, in opposite orders: no deadlock, each added once.
  const many = users(300);
  const [x, y] = await Promise.all([one.setUsers(many, T0 + 2), two.setUsers([...many].reverse(), T0 + 2)]);
  assert.equal(x.added + y.added, 300);
});

test('replicators starting together make the schema once; a schema from a newer mailferry is refused (78)', async () => {
  const schema = `f${++schemas}`;
  const qs = await Promise.all(Array.from({ length: 5 }, () => open(schema)));
  await qs[0]!.setUsers(['a'], T0);
  assert.equal((await qs[4]!.list()).length, 1);
  await pgsql.query(`UPDATE "${schema}".queue_meta SET value = '99' WHERE key = 'schema_version'`);
  const err = await rejection(open(schema));
  assert.equal(err.exitCode, 78);
  assert.match(err.message, new RegExp(`schema ${schema} was made by a newer mailferry \\(queue schema 99`));
});

test('an unreachable server is 75 naming host, port and database; a wrong password is 78; neither message shows the password', async () => {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
  const down = await rejection(open('x', { connect: `postgresql://replicator:s3cret-pw@127.0.0.1:${port}/mailq` }));
  assert.equal(down.exitCode, 75);
  assert.match(down.message, new RegExp(`^replicator_queue: PostgreSQL at 127\\.0\\.0\\.1:${port}, database mailq: cannot connect: connection refused$`));
  const wrong = await rejection(open('x', { connect: `host=127.0.0.1 port=${pgsql.port} dbname=postgres user=${pgsql.user} password='s3cret-pw'` }));
  assert.equal(wrong.exitCode, 78);
  assert.match(wrong.message, /password authentication failed/);
  for (const e of [down, wrong]) assert.doesNotMatch(e.message, /s3cret/);
  const sqliteUri = await rejection(open('x', { connect: 'sqlite:/tmp/q.db' }));
  assert.equal(sqliteUri.exitCode, 78);
});

test('the server cut off under a running queue: reads fail with 75 (never a crash), changes and sync results are kept and handed over when it is back, claims wait, one line for the outage and one for its end', async () => {
  const r = await relay(pgsql.port);
  relays.push(r);
  const lines: string[] = [];
  const q = await open(`k${++schemas}`, { leaseMs: 600, log: (l) => lines.push(l), connect: `postgresql://${pgsql.user}:${encodeURIComponent(pgsql.password)}@127.0.0.1:${r.port}/postgres` });
  await q.setUsers(users(3), T0);
  const c = await q.claim('me', T0);
  assert.ok(c);
  r.cut();
  const err = await rejection(q.counts(T0));
  assert.equal(err.exitCode, 75);
  assert.match(err.message, new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${r.port}, database postgres`));
  assert.equal(await q.notify('u1', 'high', T0 + 1), true, 'a change is kept');
  await q.complete(c, { result: 'ok', at: T0 + 2 });
  assert.equal(await q.claim('me', T0 + 3), undefined, 'nothing is claimed from a database out of reach');
  const asked = Date.now();
  const due = (await q.nextDue())!;
  const asked2 = Date.now();
  const due2 = (await q.nextDue())!;
  assert.ok(due - asked >= 1000 && due2 - asked2 >= 2000 && due2 - asked2 <= 30_000 + 5000, `the next look comes after a growing wait: ${due - asked}, ${due2 - asked2}`);
  await sleep(600);
  assert.equal(lines.length, 1, `one line while it is down: ${lines.join(' | ')}`);
  assert.match(lines[0]!, /cannot connect|connection was lost|terminated/);
  assert.match(lines[0]!, /changes and sync results kept until it is back; running syncs keep their claims 0\.6 s without it/);
  r.restore();
  await until(() => lines.length > 1, 5000);
  assert.match(lines[1]!, /reachable again after \d+\.\d s; 1 changes and 1 sync results kept meanwhile handed over$/);
  const [done] = await q.list((u) => u === c.user);
  assert.deepEqual([done?.claimedBy, done?.lastSuccess], [undefined, T0 + 2], 'the sync was recorded when the server came back');
  const [changed] = await q.list((u) => u === 'u1');
  assert.equal(changed?.priority, 'high', 'the change made during the outage is queued');
  assert.equal(lines.length, 2);
  await q.close();
});

test('a claim whose COMMIT reached the server but whose answer was lost is not held by its own process: it comes back within a lease, its priority kept', async () => {
  const r = await relay(pgsql.port);
  relays.push(r);
  const schema = `k${++schemas}`;
  const lines: string[] = [];
  const q = await open(schema, { leaseMs: 600, log: (l) => lines.push(l), connect: `postgresql://${pgsql.user}:${encodeURIComponent(pgsql.password)}@127.0.0.1:${r.port}/postgres` });
  await q.setUsers(['a'], T0);
  await q.notify('a', 'high', T0);
  const sprung = r.cutAfter(/claim_id = nextval/, /COMMIT/);
  assert.equal(await q.claim('me', T0 + 1), undefined, 'the claim is not known to have been taken');
  await sprung;
  const held = await pgsql.query(`SELECT claimed_by FROM ${schema}.replica_users WHERE username = 'a'`);
  assert.equal((held.rows[0] as { claimed_by: string | null }).claimed_by, 'me', 'the server took the claim');
  r.restore();
  // The queue's own renewal finds the database back first (it says so once it renewed what it holds).
  await until(() => lines.some((l) => /reachable again/.test(l)), 5000);
  // Nobody runs that sync: its lease must run out, renewed by no one, and the user come back.
  let again: SyncClaim | undefined;
  const end = Date.now() + 5 * 600;
  while (again === undefined && Date.now() < end) {
    again = await q.claim('me', T0 + 2);
    if (again === undefined) await sleep(100);
  }
  assert.deepEqual([again?.user, again?.priority], ['a', 'high'], 'the user is claimed again, as it was asked for');
  await q.complete(again!, { result: 'ok', at: T0 + 3 });
  const [a] = await q.list((u) => u === 'a');
  assert.deepEqual([a?.claimedBy, a?.lastSuccess], [undefined, T0 + 3]);
});

async function until(done: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms`);
    await sleep(50);
  }
}

test('replicator_queue chooses: sqlite (the default) in the state directory, PostgreSQL by URI or key=value; bad values are 78 naming the setting', async () => {
  const settings = (extra: Record<string, string>) => {
    const s = { ...DEFAULT_SETTINGS };
    for (const [k, v] of Object.entries(extra)) applySetting(s, k, v, '-o');
    return s;
  };
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-queue-'));
  try {
    const local = await openReplicationQueue(settings({}), dir);
    assert.ok(local instanceof SqliteReplicationQueue);
    assert.equal(isSharedQueue(settings({})), false);
    await local.close();
    const kv = `host=127.0.0.1 port=${pgsql.port} dbname=postgres user=${pgsql.user} password='${pgsql.password}'`;
    const shared = await openReplicationQueue(settings({ replicator_queue: kv, replicator_queue_schema: `o${++schemas}`, replication_claim_lease: '5s' }), dir);
    opened.push(shared);
    assert.ok(shared instanceof PostgresReplicationQueue);
    assert.match(shared.description, /^replicator queue host=127\.0\.0\.1 port=\d+ dbname=postgres user=\S+ password=\*{4} \(schema o\d+\)$/);
    await shared.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const [key, value, why] of [
    ['replicator_queue', ' ', /invalid replicator_queue/],
    ['replicator_queue_schema', 'Fleet-1', /expected a lower-case SQL name/],
    ['replication_claim_lease', '0.1s', /at least 300 ms/],
  ] as const) {
    assert.throws(() => settings({ [key]: value }), (err: unknown) => err instanceof MailferryError && err.exitCode === 78 && why.test(err.message));
  }
  const typo = await rejection(openReplicationQueue(settings({ replicator_queue: 'mysql://x@h/db' }), '/nonexistent'));
  assert.equal(typo.exitCode, 78);
  assert.match(typo.message, /^replicator_queue: 'mysql' databases are not supported/);
});
