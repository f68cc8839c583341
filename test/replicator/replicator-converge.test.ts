/**
 * The replicator end to end, a real daemon process of the built CLI: 20 users with local
 * Maildir replicas (Maildir++ and LAYOUT=fs, folders with spaces, unicode and dots) while a
 * script delivers mail, changes flags and expunges on both sides; once the script stops, every
 * pair converges exactly (same messages, once each, in the same folders, with the same flags,
 * nothing delivered lost, nothing from nowhere) within a bound the test reports. Then a restart
 * after SIGKILL keeps the queue: requests queued before the kill run after it, with each user's
 * history intact.
 *
 * MAILFERRY_SOAK=1 runs the script for a minute instead of a few seconds.
 */
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { after, test } from 'node:test';
import { QUEUE_FILE } from '../../src/replicator/sqlite-replication-queue.js';
import { change, type Changes, control, differences, holdings, judge, makeReplicaSite, randomInt, sleep, startReplicator, until } from './replica-site.js';

const SOAK = process.env.MAILFERRY_SOAK === '1';
const SCRIPT_MS = SOAK ? 60_000 : 5_000;
/** Convergence after the script stops must come within this (the check interval is 2 s). */
const CONVERGE_MS = 30_000;

const site = makeReplicaSite({ users: 20 });
after(() => site.stop());

test('20 users, changes on both sides while the replicator runs: every pair converges exactly, and a restart after SIGKILL keeps the queue', { timeout: 300_000 }, async () => {
  const settings = { replication_max_conns: '4', replication_check_interval: '2s' };
  const r = startReplicator(site, settings);
  let before: { users: { user: string; lastFullSync: number }[] };
  let requested = 0;
  try {
    await r.waitFor(/started: 20 users \(20 new, 0 gone\), 20 watched, 4 workers/, 20_000);
    // Every user's first (full) sync.
    await until(() => new Set(r.syncs().map((l) => l.text.split(' ')[3])).size === 20, 60_000, () => r.log());
    for (const u of site.users) assert.deepEqual(differences(holdings(u.source), holdings(u.replica)), [], `${u.name} after the first sync`);
    const firsts = new Map<string, string>();
    for (const l of r.syncs()) if (!firsts.has(l.text.split(' ')[3]!)) firsts.set(l.text.split(' ')[3]!, l.text);
    assert.ok([...firsts.values()].every((t) => /full sync \((none|low|high)\) ok/.test(t)), 'every first sync is a full one');

    const c: Changes = { expunged: new Set(), ops: 0 };
    const started = Date.now();
    while (Date.now() - started < SCRIPT_MS) {
      const u = site.users[randomInt(site.users.length)]!;
      change(site, u, Math.random() < 0.6 ? 'source' : 'replica', c);
      await sleep(randomInt(15));
    }
    const stopped = Date.now();
    const pending = () => site.users.flatMap((u) => judge(site, u, c));
    const took = await until(() => pending().length === 0, CONVERGE_MS, () => pending().slice(0, 20).join('\n'), 250);
    // Still equal once the replicator has had time for the syncs its last hints asked for.
    await sleep(2500);
    assert.deepEqual(pending(), []);
    const syncs = r.syncs();
    assert.ok(syncs.every((l) => / ok in /.test(l.text)), syncs.filter((l) => !/ ok in /.test(l.text)).map((l) => l.text).join('\n'));
    process.stdout.write(`# ${c.ops} changes over ${SCRIPT_MS} ms on 20 users; every pair converged ${took} ms after the script stopped; ${syncs.length} syncs in all\n`);
    assert.doesNotMatch(r.log(), /internal error|\n\s+at /);

    // A request queued just before a SIGKILL: the queue on disk keeps it.
    before = JSON.parse(control(site, ['status', '--json', 'u2']).stdout) as typeof before;
    assert.ok(before.users[0]!.lastFullSync > 0);
    requested = Date.now();
    const queued = control(site, ['replicate', '-p', 'low', '-f', 'u1?']);
    assert.equal(queued.code, 0, queued.stderr);
    assert.match(queued.stdout, /^queued 10 users: u10 u11 u12 u13 u14 u15 u16 u17 u18 u19$/m);
    r.child.kill('SIGKILL');
    assert.equal(await r.exited, 137);
    assert.deepEqual(differences(holdings(site.users[0]!.source), holdings(site.users[0]!.replica)), []);
  } finally {
    r.child.kill('SIGKILL');
  }

  // The syncs the kill cut short, as the queue on disk holds them.
  const db = new Database(join(site.dir, 'state', QUEUE_FILE), { readonly: true });
  const unfinished = db.prepare<[], { user: string }>('SELECT user FROM replica_users WHERE claimed_by IS NOT NULL').all().map((r) => r.user);
  db.close();
  // Restarted with nothing to watch and no periodic check for an hour: only the queue itself brings the syncs.
  const again = startReplicator(site, { replication_max_conns: '4', replication_check_interval: '1h', replication_max_watched_users: '0' });
  try {
    await again.waitFor(/started: 20 users \(0 new, 0 gone(, \d+ unfinished syncs queued again)?\), 0 watched/, 20_000);
    // Some of the queued full syncs may have finished before the kill (the queue recorded them);
    // every other one, the unfinished ones included, runs after the restart.
    const fullSyncs = () =>
      (JSON.parse(control(site, ['status', '--json', 'u1?']).stdout) as { users: { user: string; lastFullSync?: number }[] }).users.filter((u) => (u.lastFullSync ?? 0) >= requested);
    await until(() => fullSyncs().length === 10, 30_000, () => `${fullSyncs().map((u) => u.user).join(' ')} done of u10-u19:\n${again.log()}`);
    const synced = () => new Set(again.syncs().map((l) => l.text.split(' ')[3]!.replace(/:$/, '')));
    await until(() => unfinished.every((u) => synced().has(u)), 30_000, () => `the syncs the kill cut short (${unfinished.join(' ')}) ran again:\n${again.log()}`);
    assert.equal(again.log().match(/(\d+) unfinished syncs queued again/)?.[1] ?? '0', String(unfinished.length));
    if (!unfinished.includes('u2')) assert.ok(!synced().has('u2'), `u2 had nothing queued and nothing changed:\n${again.log()}`);
    const status = JSON.parse(control(site, ['status', '--json', 'u2']).stdout) as { users: { user: string; lastFullSync: number; lastSuccess: number }[] };
    assert.equal(status.users.length, 1);
    assert.equal(status.users[0]!.lastFullSync, before.users[0]!.lastFullSync, 'u2 keeps its history across the restart');
    const counts = JSON.parse(control(site, ['status', '--json']).stdout) as { counts: { total: number } };
    assert.equal(counts.counts.total, 20);
    again.child.kill('SIGTERM');
    assert.equal(await again.exited, 0, again.log());
    assert.match(again.log(), /SIGTERM: stopping[\s\S]*stopped/);
  } finally {
    again.child.kill('SIGKILL');
  }
});
