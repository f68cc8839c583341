/**
 * Two replicator daemons (the built CLI, each with its own state directory and socket) sharing
 * one queue in a real PostgreSQL, over 20 users with local Maildir replicas, while a script
 * delivers mail, changes flags and expunges on both sides. Watched two ways: a trigger on the
 * queue table writes every claim and its end to an audit table (the database's clock and order),
 * and each daemon's log gives its syncs' spans; neither may show one user synced by two at once.
 * One daemon is SIGKILLed while it syncs: its users are finished by the other once their lease
 * runs out. When the script stops every pair converges exactly, nothing lost or duplicated, and
 * the test says how long it took.
 */
import { strict as assert } from 'node:assert';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PostgresReplicationQueue } from '../../src/replicator/postgres-replication-queue.js';
import { cli } from '../cli/cli-child.js';
import { startPostgres, type Postgres } from '../support/postgres.js';
import { relay } from './pg-relay.js';
import { change, type Changes, deliver, differences, holdings, judge, makeReplicaSite, randomInt, type Replicator, sleep, startReplicator, SYNC_LINE, until } from './replica-site.js';

const SCHEMA = 'fleet';
const LEASE_S = 2;
const SCRIPT_MS = 6_000;
const CONVERGE_MS = 30_000;

const site = makeReplicaSite({ users: 20 });
let pgsql: Postgres;

before(async () => {
  pgsql = await startPostgres();
});
after(async () => {
  await pgsql?.stop();
  site.stop();
});

/** Each daemon's syncs as spans [start, end] in wall time, from its log: the line's arrival less the time the line gives. */
function spans(r: Replicator, name: string): { user: string; from: number; to: number; who: string }[] {
  return r.syncs().map((l) => {
    const secs = Number(/ in (\d+(?:\.\d+)?) s/.exec(l.text)?.[1] ?? 0);
    return { user: SYNC_LINE.exec(l.text)![1]!.replace(/:$/, ''), from: l.at - secs * 1000, to: l.at, who: name };
  });
}

/** Waits until `r` has logged no sync for two check intervals and its queue holds no claim and nothing pending. */
async function idle(r: Replicator, schema: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const last = r.syncs().at(-1)?.at ?? 0;
    const { rows } = await pgsql.query(`SELECT count(*)::integer AS n FROM ${schema}.replica_users WHERE claimed_by IS NOT NULL OR priority > 0`);
    if (Date.now() - last > 2000 && (rows[0] as { n: number }).n === 0) return;
    if (Date.now() > end) assert.fail(`the replicator did not settle within ${ms} ms:\n${r.log()}`);
    await sleep(200);
  }
}

test('two replicators on one PostgreSQL queue: no user synced by two at once, a SIGKILLed one\'s users finished by the other, every pair converges exactly', { timeout: 180_000 }, async (t) => {
  // The schema made first, so the audit trigger is in place before the first claim.
  const made = await PostgresReplicationQueue.open({ connect: pgsql.uri, schema: SCHEMA, timing: { fullSyncIntervalMs: 86_400_000, failureBackoffMs: 1000 }, leaseMs: 1000 });
  await made.close();
  await pgsql.query(`
    CREATE TABLE claim_audit (id bigserial PRIMARY KEY, username text NOT NULL, owner text NOT NULL, event text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
    CREATE FUNCTION claim_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        IF OLD.claimed_by IS NOT NULL THEN INSERT INTO claim_audit (username, owner, event) VALUES (OLD.username, OLD.claimed_by, 'end'); END IF;
        RETURN OLD;
      END IF;
      IF OLD.claimed_by IS DISTINCT FROM NEW.claimed_by OR OLD.claim_id IS DISTINCT FROM NEW.claim_id THEN
        IF OLD.claimed_by IS NOT NULL THEN INSERT INTO claim_audit (username, owner, event) VALUES (OLD.username, OLD.claimed_by, 'end'); END IF;
        IF NEW.claimed_by IS NOT NULL THEN INSERT INTO claim_audit (username, owner, event) VALUES (NEW.username, NEW.claimed_by, 'claim'); END IF;
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER claim_audit AFTER UPDATE OR DELETE ON ${SCHEMA}.replica_users FOR EACH ROW EXECUTE FUNCTION claim_audit();
  `);
  const settings = (name: string) => ({
    replicator_state_dir: join(site.dir, `state-${name}`),
    replicator_queue: pgsql.uri,
    replicator_queue_schema: SCHEMA,
    replication_claim_lease: `${LEASE_S}s`,
    replication_max_conns: '3',
    replication_check_interval: '2s',
    // A failed sync is tried again soon and reported below, not waited out for five minutes.
    replication_failure_backoff: '1s',
  });
  const a = startReplicator(site, settings('a'), ['--socket', join(site.dir, 'a.sock')]);
  const b = startReplicator(site, settings('b'), ['--socket', join(site.dir, 'b.sock')]);
  let bAfterKill: Replicator | undefined;
  try {
    await Promise.all([a.waitFor(/started: 20 users/, 20_000), b.waitFor(/started: 20 users/, 20_000)]);
    const synced = () => new Set([...spans(a, 'a'), ...spans(b, 'b')].map((s) => s.user));
    await until(() => synced().size === 20, 60_000, () => `${a.log()}\n---\n${b.log()}`);
    const firsts = [spans(a, 'a').length, spans(b, 'b').length];
    t.diagnostic(`first syncs: ${firsts[0]} by a, ${firsts[1]} by b`);

    const c: Changes = { expunged: new Set(), ops: 0 };
    const started = Date.now();
    let killed: { users: string[]; at: number } | undefined;
    const aPid = a.child.pid!;
    while (Date.now() - started < SCRIPT_MS) {
      const u = site.users[randomInt(site.users.length)]!;
      change(site, u, Math.random() < 0.6 ? 'source' : 'replica', c);
      if (killed === undefined && Date.now() - started > SCRIPT_MS / 3) {
        // a is killed while it holds a claim: a sync cut off in the middle.
        const held = await pgsql.query(`SELECT username FROM ${SCHEMA}.replica_users WHERE claimed_by = $1`, [`${hostname()}:${aPid}`]);
        if (held.rows.length > 0) {
          a.child.kill('SIGKILL');
          killed = { users: (held.rows as { username: string }[]).map((r) => r.username), at: Date.now() };
        }
      }
      await sleep(randomInt(15));
    }
    const scriptEnd = Date.now();
    assert.ok(killed, `a held no claim during the script:\n${a.log()}`);
    assert.equal(await a.exited, 137);
    t.diagnostic(`a SIGKILLed holding ${killed.users.join(' ')}`);
    bAfterKill = b;
    // The other replicator finishes a's users once their lease runs out.
    const fromKill = b.lines.findIndex((l) => l.at >= killed!.at);
    const finished = (u: string) => b.syncs(u, fromKill < 0 ? b.lines.length : fromKill).find((l) => / ok in /.test(l.text));
    await until(() => killed!.users.every((u) => finished(u) !== undefined), LEASE_S * 1000 + 20_000, () => b.log());
    const takenOver = Math.max(...killed.users.map((u) => finished(u)!.at)) - killed.at;
    const pending = () => site.users.flatMap((u) => judge(site, u, c));
    // On failure: what both replicators logged about the users that differ.
    const story = () => {
      const who = new Set(pending().map((l) => l.split(':')[0]!));
      const about = (r: Replicator, name: string) => r.lines.filter((l) => [...who].some((u) => l.text.includes(`user ${u}:`))).map((l) => `${name} ${l.at - started}: ${l.text}`);
      return [...pending().slice(0, 20), `killed at ${killed!.at - started}`, ...about(a, 'a'), ...about(b, 'b')].join('\n');
    };
    await until(() => pending().length === 0, CONVERGE_MS, story, 250);
    const took = Date.now() - scriptEnd;
    await sleep(2500);
    assert.deepEqual(pending(), [], 'still equal after the last hints were synced');
    process.stdout.write(
      `# ${c.ops} changes over ${SCRIPT_MS} ms on 20 users by 2 replicators; a SIGKILLed holding ${killed.users.length} claims, finished by b ${takenOver} ms later (lease ${LEASE_S} s); ` +
        `every pair converged ${took} ms after the script stopped; ${spans(a, 'a').length + spans(b, 'b').length} syncs in all\n`,
    );

    // The audit: per user, claims and their ends alternate, each end the claim's own owner's; a's cut-off claims ended by recovery.
    const audit = (await pgsql.query('SELECT username, owner, event, at FROM claim_audit ORDER BY id')).rows as { username: string; owner: string; event: string; at: Date }[];
    const open = new Map<string, string>();
    for (const e of audit) {
      const holder = open.get(e.username);
      if (e.event === 'claim') {
        assert.equal(holder, undefined, `${e.username} claimed by ${e.owner} at ${e.at.toISOString()} while ${holder} held it`);
        open.set(e.username, e.owner);
      } else {
        assert.equal(holder, e.owner, `${e.username}: an end of ${e.owner}'s claim, held by ${holder}`);
        open.delete(e.username);
      }
    }
    assert.equal(open.size, 0, `claims still held at the end: ${[...open].join(' ')}`);
    const claimsBy = (who: string) => audit.filter((e) => e.event === 'claim' && e.owner.endsWith(`:${who}`)).length;
    assert.ok(claimsBy(String(aPid)) > 0 && claimsBy(String(b.child.pid)) > 0, 'both replicators worked');

    // The logs: no two spans of one user overlap (100 ms for the pipes that carried the lines).
    const all = [...spans(a, 'a'), ...spans(b, 'b')].sort((x, y) => x.from - y.from);
    const last = new Map<string, { to: number; who: string }>();
    for (const s of all) {
      const prev = last.get(s.user);
      if (prev && prev.who !== s.who) assert.ok(s.from >= prev.to - 100, `${s.user} synced by ${s.who} from ${s.from} while ${prev.who} synced it until ${prev.to}`);
      last.set(s.user, prev && prev.to > s.to ? prev : s);
    }
    const failed = [...a.syncs(), ...b.syncs()].filter((l) => !/ ok in /.test(l.text));
    assert.deepEqual(failed.map((l) => l.text), []);
    assert.doesNotMatch(`${a.log()}\n${b.log()}`, /internal error|\n\s+at /);

    // The fleet seen and steered from anywhere: the queue asked directly, no daemon's socket.
    const fleet = (...args: string[]) => cli([...site.args({ replicator_queue: pgsql.uri, replicator_queue_schema: SCHEMA, replicator_state_dir: join(site.dir, 'elsewhere') }), 'replicator', ...args]);
    const status = fleet('status', '--queue', '--json');
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { counts: { total: number } }).counts.total, 20);
    const counts = fleet('status', '--socket', join(site.dir, 'nobody-here.sock'));
    assert.equal(counts.code, 0, `no replicator on the socket: the queue answers\n${counts.stderr}`);
    assert.match(counts.stdout, /^Total number of known users\s+20$/m);
    assert.doesNotMatch(counts.stdout, /watched/, "the queue knows nothing of a replicator's watches");
    assert.doesNotMatch(counts.stdout + counts.stderr, new RegExp(pgsql.password));
    const users = fleet('status', '--queue', 'u1?');
    assert.match(users.stdout, /^username\s+priority/);
    assert.equal(users.stdout.trim().split('\n').length, 1 + 10);
    const removed = fleet('remove', '--queue', 'u20');
    assert.equal(removed.stdout.trim(), 'removed 1 user: u20', removed.stderr);
    const added = fleet('add', '--queue', 'u20');
    assert.equal(added.stdout.trim(), 'added 1 user: u20', added.stderr);
    const before = b.syncs('u7').length;
    const asked = fleet('replicate', '--queue', '-f', 'u7');
    assert.equal(asked.stdout.trim(), 'queued 1 user: u7', asked.stderr);
    await until(() => b.syncs('u7').length > before, 10_000, () => b.log());
    assert.match(b.syncs('u7').at(-1)!.text, /full sync \(sync\) ok/, 'the running replicator took the request from the queue');
    const claims = fleet('dsync-status', '--queue');
    assert.equal(claims.code, 0, claims.stderr);
    assert.match(claims.stdout, /^owner\s+username\s+type\s+priority\s+status$/m);
    const unknown = fleet('replicate', '--queue', 'nosuchuser');
    assert.equal(unknown.code, 67, unknown.stderr);
    assert.match(unknown.stderr, /nosuchuser: no such user/);
    const notShared = cli([...site.args(), 'replicator', 'status', '--queue']);
    assert.equal(notShared.code, 64, notShared.stderr);
    assert.match(notShared.stderr, /--queue needs a shared queue/);
    b.child.kill('SIGTERM');
    assert.equal(await b.exited, 0, b.log());
  } finally {
    a.child.kill('SIGKILL');
    (bAfterKill ?? b).child.kill('SIGKILL');
  }
});

test('a replicator whose database goes away keeps running, says so once, keeps the changes it saw, and goes on when it is back', { timeout: 120_000 }, async (t) => {
  const cutOff = await relay(pgsql.port);
  const small = makeReplicaSite({ users: 3, prefix: 'o' });
  const d = startReplicator(small, {
    replicator_queue: `postgresql://${pgsql.user}:${encodeURIComponent(pgsql.password)}@127.0.0.1:${cutOff.port}/postgres`,
    replicator_queue_schema: 'outage',
    replication_claim_lease: '1s',
    replication_check_interval: '1s',
  });
  try {
    await d.waitFor(/started: 3 users/, 20_000);
    await until(() => new Set(spans(d, 'd').map((s) => s.user)).size === 3, 30_000, () => d.log());
    // Cut only once nothing runs or waits: a sync claimed before the cut would carry the message over by itself.
    await idle(d, 'outage', 20_000);
    const from = d.lines.length;
    cutOff.cut();
    const cutAt = Date.now();
    const o1 = small.users[0]!;
    const id = deliver(o1.source, '', 'outage');
    small.delivered.get(o1.name)!.add(id);
    await d.waitFor(/PostgreSQL at 127\.0\.0\.1:\d+, database postgres: .*trying again with growing waits/, 15_000, from);
    await sleep(3000);
    assert.equal(d.child.exitCode, null, `the replicator ended:\n${d.log()}`);
    assert.ok(!holdings(o1.replica).byId.has(id));
    cutOff.restore();
    const back = Date.now();
    await d.waitFor(/reachable again after \d+\.\d s; \d+ changes and \d+ sync results kept meanwhile handed over/, 20_000, from);
    await until(() => holdings(o1.replica).byId.has(id), 15_000, () => d.log());
    const took = Date.now() - back;
    assert.deepEqual(differences(holdings(o1.source), holdings(o1.replica)), []);
    const about = d.lines.slice(from).filter((l) => !SYNC_LINE.test(l.text)).map((l) => l.text);
    assert.equal(about.length, 2, `one line when the database went away, one when it came back:\n${about.join('\n')}`);
    assert.doesNotMatch(d.log(), new RegExp(pgsql.password));
    t.diagnostic(`cut off for ${back - cutAt} ms; the message delivered meanwhile reached the replica ${took} ms after the database came back`);
    d.child.kill('SIGTERM');
    assert.equal(await d.exited, 0, d.log());
  } finally {
    d.child.kill('SIGKILL');
    await cutOff.close();
    small.stop();
  }
});
