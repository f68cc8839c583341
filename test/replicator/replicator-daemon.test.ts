/**
 * The replicator daemon through its control socket and signals, a real process of the built
 * CLI each time: status, replicate, add, remove and dsync-status as an administrator types them
 * (unknown users 67, no replicator 75 naming the socket, a socket only its owner may use, bad
 * requests refused); a replica that is down backs off with growing waits however many changes
 * arrive, while the other users keep syncing; SIGHUP brings in a user added to the userdb;
 * SIGTERM lets a running sync finish, and past replication_stop_timeout ends it, to be run again
 * at the next start; 10,000 changes to one user within a second are a handful of syncs.
 */
import { strict as assert } from 'node:assert';
import { appendFileSync, chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { controlRequest } from '../../src/replicator/control-client.js';
import {
  control,
  deliver,
  differences,
  filesIn,
  GID,
  give,
  holdings,
  isSocket,
  makeReplicaSite,
  setFlags,
  sleep,
  startReplicator,
  UID,
  until,
  type ReplicaSite,
} from './replica-site.js';

const sites: ReplicaSite[] = [];
after(() => {
  for (const s of sites) s.stop();
});

function site(users: number, prefix: string, messages?: number): ReplicaSite {
  const s = makeReplicaSite({ users, prefix, messages });
  sites.push(s);
  return s;
}

/** A raw exchange with the socket, for what the CLI would never send. */
function rawExchange(path: string, data: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(path);
    let got = '';
    s.on('data', (b) => (got += b.toString()));
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.on('connect', () => {
      s.write(data);
      setTimeout(() => s.end(), 300);
    });
  });
}

test('control commands through the socket; a replica that is down backs off without a busy loop while the others sync; SIGHUP adds a user', { timeout: 120_000 }, async () => {
  const s = site(3, 'c');
  // A far replica whose host is down: the remote command fails as ssh does when it cannot connect.
  const down = join(s.dir, 'ssh-down.sh');
  writeFileSync(down, '#!/bin/sh\necho "ssh: connect to host replica.invalid port 22: Connection refused" >&2\nexit 255\n');
  chmodSync(down, 0o755);
  const home = join(s.dir, 'home', 'down');
  mkdirSync(join(home, 'Maildir', 'cur'), { recursive: true });
  for (const sub of ['new', 'tmp']) mkdirSync(join(home, 'Maildir', sub));
  for (const p of [home, join(home, 'Maildir'), ...['cur', 'new', 'tmp'].map((x) => join(home, 'Maildir', x))]) give(p);
  appendFileSync(s.passwdFile, `down:{PLAIN}pw:${UID}:${GID}::${home}::userdb_mail=maildir:~/Maildir userdb_mail_replica=remote:replica.invalid\nquiet:{PLAIN}pw:${UID}:${GID}::${home}::userdb_mail=maildir:~/Maildir userdb_noreplicate=y\n`);

  const r = startReplicator(s, { replication_failure_backoff: '400ms', replication_check_interval: '1s', replication_max_conns: '2', dsync_remote_cmd: down });
  try {
    await r.waitFor(/started: 4 users \(4 new, 0 gone, 1 noreplicate\), 4 watched, 2 workers/, 20_000);
    assert.deepEqual(isSocket(s.socket), { socket: true, mode: 0o600 });
    await until(() => ['c1', 'c2', 'c3'].every((u) => r.syncs(u).length > 0) && r.syncs('down').length > 0, 30_000, () => r.log());
    const firstFailure = r.syncs('down')[0]!;
    assert.match(firstFailure.text, /user down: full sync \(\w+\) failed in [\d.]+ s \(exit 75\): .*Connection refused.*; next try in 00:00:00/);

    // Changes keep coming for the failing user (hints every 100 ms) and for a healthy one.
    const watchFrom = r.lines.length;
    const started = Date.now();
    let healthy = 0;
    while (Date.now() - started < 6000) {
      deliver(join(home, 'Maildir'), '', 'down-change');
      if ((Date.now() - started) % 1000 < 100) {
        deliver(s.users[0]!.source, '', 'c1-change');
        healthy++;
      }
      await sleep(100);
    }
    const tries = r.syncs('down', watchFrom);
    const gaps = tries.slice(1).map((t, i) => t.at - tries[i]!.at);
    process.stdout.write(`# replica down: ${tries.length} tries in 6 s of changes every 100 ms, ${gaps.map((g) => `${g} ms`).join(', ')} apart\n`);
    // 0.4, 0.8, 1.6, 3.2 s waits: at most five tries in six seconds, never one a change.
    assert.ok(tries.length >= 2 && tries.length <= 5, r.log());
    // Each gap is a doubled wait plus a try's own time (the remote command's start), which load stretches.
    for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i]! >= gaps[i - 1]! - 400, `waits grow: ${gaps.join(', ')}`);
    assert.ok(gaps.every((g) => g >= 700), `no try comes sooner than the doubled base: ${gaps.join(', ')}`);
    await until(() => holdings(s.users[0]!.replica).byId.size === holdings(s.users[0]!.source).byId.size, 5000, () => r.log());
    assert.ok(healthy > 0);

    const status = control(s, ['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^Waiting 'failed' requests +1$/m);
    assert.match(status.stdout, /^Total number of known users +4$/m);
    assert.match(status.stdout, /^Users watched for changes +4$/m);
    const one = control(s, ['status', 'down']);
    assert.match(one.stdout, /^username +priority +fast sync +full sync +success sync +failed +next sync secs$/m);
    assert.match(one.stdout, /^down +\w+ +- +- +- +y \(\d+\) +\d+$/m);
    const json = JSON.parse(control(s, ['status', '--json', 'c*']).stdout) as { users: { user: string; lastSuccess: number }[] };
    assert.deepEqual(json.users.map((u) => u.user), ['c1', 'c2', 'c3']);
    assert.ok(json.users.every((u) => u.lastSuccess > 0));

    // An administrator's request cuts through the back-off at once.
    const mark = r.lines.length;
    const replicate = control(s, ['replicate', 'down']);
    assert.equal(replicate.code, 0, replicate.stderr);
    assert.equal(replicate.stdout, 'queued 1 user: down\n');
    await r.waitFor(/user down: full sync \(sync\) failed/, 3000, mark);

    const full = control(s, ['replicate', '-f', '-p', 'high', 'c2']);
    assert.equal(full.code, 0, full.stderr);
    await r.waitFor(/user c2: full sync \(high\) ok/, 5000, mark);

    for (const [args, code, re] of [
      [['replicate', 'ghost'], 67, /user ghost: no such user in passwd-file/],
      [['replicate', 'zz*'], 67, /no user of the replicator matches 'zz\*'/],
      [['add', 'quiet'], 65, /user quiet has noreplicate set/],
      [['add', 'zz*'], 67, /no user of passwd-file .* with a mail_replica matches 'zz\*'/],
      [['remove', 'ghost'], 67, /no user of the replicator matches 'ghost'/],
      [['replicate', '-p', 'urgent', 'c1'], 64, /invalid priority 'urgent': expected low, high or sync/],
    ] as const) {
      const res = control(s, [...args]);
      assert.equal(res.code, code, `${args.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, re);
      assert.equal(res.stderr.trim().split('\n').length, 1, 'one line');
    }

    // Removed users are left alone until added back.
    const removed = control(s, ['remove', 'c3']);
    assert.equal(removed.stdout, 'removed 1 user: c3\n');
    const c3 = s.users[2]!;
    const removedMark = r.lines.length;
    deliver(c3.source, '', 'c3-while-removed');
    await sleep(2500);
    assert.equal(r.syncs('c3', removedMark).length, 0, r.log());
    assert.match(control(s, ['status']).stdout, /^Total number of known users +3$/m);
    assert.equal(control(s, ['add', 'c*']).stdout, 'added 3 users: c1 c2 c3\n');
    await until(() => differences(holdings(c3.source), holdings(c3.replica)).length === 0, 5000, () => r.log());

    const workers = control(s, ['dsync-status']);
    assert.equal(workers.code, 0, workers.stderr);
    assert.match(workers.stdout, /^worker +username +type +priority +status\n1 .*\n2 .*\n$/);

    // What no client of ours sends: refused with a reason, the daemon unharmed.
    assert.match(await rawExchange(s.socket, 'this is not json\n'), /"ok":false,"error":"not a JSON request","exitCode":64/);
    assert.match(await rawExchange(s.socket, '{"cmd":"shutdown"}\n'), /unknown command \\"shutdown\\"/);
    assert.match(await rawExchange(s.socket, `{"cmd":"status","mask":"${'x'.repeat(100_000)}`), /request longer than/);
    assert.match(await rawExchange(s.socket, '{"cmd":"status"}\n{"cmd":"dsync-status"}\n'), /"cmd":"status"[\s\S]*"cmd":"dsync-status"/);

    // SIGHUP: a user added to the userdb joins.
    const added = s.addUser('c9', 2);
    const hupMark = r.lines.length;
    r.child.kill('SIGHUP');
    await r.waitFor(/reloaded: 5 users \(1 new, 0 gone\)/, 10_000, hupMark);
    await until(() => differences(holdings(added.source), holdings(added.replica)).length === 0 && holdings(added.replica).byId.size === 2, 10_000, () => r.log());
    // A configuration that no longer parses is reported and the old one stays in force.
    writeFileSync(s.passwdFile, `${readFileSync(s.passwdFile, 'utf8')}broken:x:not-a-uid:${GID}::${home}::\n`);
    r.child.kill('SIGHUP');
    await r.waitFor(/user broken: .*not-a-uid.*; not replicated/, 10_000, hupMark);

    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0, r.log());
    assert.doesNotMatch(r.log(), /internal error|\n\s+at /);
  } finally {
    r.child.kill('SIGKILL');
  }
  const gone = control(s, ['status']);
  assert.equal(gone.code, 75);
  assert.equal(gone.stderr, `mailferry: error: no mailferry replicator answers at ${s.socket} (ENOENT): is it running? (--socket names another)\n`);
});

test('start-up refusals: no userdb (78), a second replicator on the same state directory or socket (75)', { timeout: 60_000 }, async () => {
  const s = site(1, 'r');
  const none = startReplicator({ ...s, args: () => ['-c', '', '-o', `replicator_state_dir=${join(s.dir, 'other-state')}`] });
  assert.equal(await none.exited, 78);
  assert.match(none.log(), /the replicator needs a userdb/);
  const first = startReplicator(s);
  try {
    await first.waitFor(/started: 1 users/, 20_000);
    const second = startReplicator(s);
    assert.equal(await second.exited, 75);
    assert.match(second.log(), /another mailferry replicator \(pid \d+\) uses .*state/);
    const third = startReplicator({ ...s, args: (o) => [...s.args(o), '-o', `replicator_state_dir=${join(s.dir, 'state2')}`] });
    assert.equal(await third.exited, 75);
    assert.match(third.log(), /another mailferry replicator answers at .*ctl\.sock/);
    first.child.kill('SIGINT');
    assert.equal(await first.exited, 0, first.log());
  } finally {
    first.child.kill('SIGKILL');
  }
});

test('SIGTERM lets a running sync finish; past replication_stop_timeout it is ended, and runs again at the next start', { timeout: 120_000 }, async () => {
  const s = site(2, 'big', 600);
  const [big1, big2] = s.users as [(typeof s.users)[0], (typeof s.users)[0]];
  const r = startReplicator(s, { replication_max_conns: '1', replication_check_interval: '1h' }, ['-u', 'big1']);
  try {
    await r.waitFor(/started: 1 users/, 20_000);
    // The first sync of 600 messages is under way.
    await waitSyncing(s, 'big1');
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0, r.log());
    assert.match(r.log(), /stopping: waiting up to 60 s for 1 running sync\n[\s\S]*user big1: full sync \(\w+\) ok[\s\S]*replicator: stopped$/);
    assert.deepEqual(differences(holdings(big1.source), holdings(big1.replica)), []);
  } finally {
    r.child.kill('SIGKILL');
  }

  const cut = startReplicator(s, { replication_max_conns: '1', replication_check_interval: '1h', replication_stop_timeout: '100ms' }, ['-u', 'big2']);
  try {
    await cut.waitFor(/started: 1 users/, 20_000);
    await waitSyncing(s, 'big2');
    cut.child.kill('SIGTERM');
    assert.equal(await cut.exited, 0, cut.log());
    assert.match(cut.log(), /syncs still running after 0.1 s are ended[\s\S]*stopped: 1 unfinished syncs kept in the queue/);
    assert.equal(cut.syncs('big2').length, 0, 'the ended sync is not logged as done');
    assert.ok(holdings(big2.replica).byId.size < 600, 'the sync was cut short');
  } finally {
    cut.child.kill('SIGKILL');
  }
  const resumed = startReplicator(s, { replication_max_conns: '1', replication_check_interval: '1h', replication_max_watched_users: '0' }, ['-u', 'big2']);
  try {
    // The claim was given back at the stop: big2 has still never been synced, so it is due at once.
    await resumed.waitFor(/started: 1 users \(0 new, 0 gone\), 0 watched/, 20_000);
    await resumed.waitFor(/user big2: full sync \(\w+\) ok/, 60_000);
    assert.deepEqual(differences(holdings(big2.source), holdings(big2.replica)), []);
    assert.equal(holdings(big2.replica).byId.size, 600);
    resumed.child.kill('SIGTERM');
    assert.equal(await resumed.exited, 0);
  } finally {
    resumed.child.kill('SIGKILL');
  }
});

async function waitSyncing(s: ReplicaSite, user: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    try {
      const r = await controlRequest(s.socket, { cmd: 'dsync-status' });
      if (r.cmd === 'dsync-status' && r.workers.some((w) => w.user === user)) return;
    } catch {
      // not listening yet
    }
    await sleep(25);
  }
  throw new Error(`${user}'s sync never showed in dsync-status`);
}

test('10,000 changes to one user within a second coalesce into a handful of syncs, and the pair converges', { timeout: 120_000 }, async () => {
  const s = site(1, 'busy', 400);
  const u = s.users[0]!;
  const r = startReplicator(s, { replication_check_interval: '1h' });
  try {
    await r.waitFor(/user busy1: full sync \(\w+\) ok/, 30_000);
    await sleep(1500);
    const mark = r.lines.length;
    // The file names held in memory, as a client that renames them knows them: no listing per change.
    const names = u.folders.map((f) => filesIn(u.source, f));
    const start = Date.now();
    let events = 0;
    for (let i = 0; i < 10_000; i++) {
      const f = i % u.folders.length;
      if (i % 100 === 0) {
        deliver(u.source, u.folders[f]!, 'burst');
        events++;
        // Spread over a second: wait for this slice's time to come.
        const due = start + i / 10;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      const k = (i * 7919) % names[f]!.length;
      const path = names[f]![k]!;
      const letters = ['S', 'FS', '', 'RS'][i % 4]!;
      if (setFlags(path, letters)) {
        events++;
        names[f]![k] = join(path, '..', '..', 'cur', `${path.slice(path.lastIndexOf('/') + 1).split(':')[0]}:2,${letters}`);
      }
    }
    const burstMs = Date.now() - start;
    const took = await until(() => differences(holdings(u.source), holdings(u.replica)).length === 0, 30_000, () => differences(holdings(u.source), holdings(u.replica)).slice(0, 5).join('\n'), 200);
    await sleep(1500);
    assert.deepEqual(differences(holdings(u.source), holdings(u.replica)), []);
    const syncs = r.syncs('busy1', mark);
    process.stdout.write(`# ${events} changes to one user in ${burstMs} ms: ${syncs.length} syncs; converged ${took} ms after the burst\n`);
    assert.ok(events >= 10_000);
    assert.ok(syncs.length >= 1 && syncs.length <= 6, r.log());
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0);
  } finally {
    r.child.kill('SIGKILL');
  }
});
