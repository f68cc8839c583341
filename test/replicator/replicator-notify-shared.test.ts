/**
 * A sync request on the notify socket of one of two replicators sharing a queue in a real
 * PostgreSQL, whose sync the other runs (the first one's only worker is held by a far replica
 * that hangs): it is answered `+` within seconds, from the queue's record of the other's sync,
 * not `-` at the one-minute bound. Both built CLI daemons; neither watches nor checks.
 */
import { strict as assert } from 'node:assert';
import { appendFileSync, chmodSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startPostgres, type Postgres } from '../support/postgres.js';
import { control, GID, makeReplicaSite, startReplicator, UID, until, type Replicator } from './replica-site.js';

const site = makeReplicaSite({ users: 3, prefix: 's' });
let pgsql: Postgres;

before(async () => {
  pgsql = await startPostgres();
});
after(async () => {
  await pgsql?.stop();
  site.stop();
});

/** A plugin's sync request: the answer line and how long it took. */
function syncRequest(path: string, user: string): Promise<{ answer: string; ms: number }> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let got = '';
    s.on('error', reject);
    s.on('connect', () => s.write(`${user}\tsync\n`));
    s.on('data', (d) => {
      got += d.toString();
      if (got.endsWith('\n')) {
        s.destroy();
        resolve({ answer: got, ms: Date.now() - start });
      }
    });
  });
}

const userOf = (line: string) => /user (\S+): /.exec(line)?.[1];

test("a request is answered + when the other replicator of a shared queue ran the sync", { timeout: 90_000 }, async (t) => {
  const notify = join(site.dir, 'replication-notify');
  // A far replica whose command hangs: it keeps the one worker of replicator a busy.
  const hang = join(site.dir, 'hang.sh');
  writeFileSync(hang, '#!/bin/sh\nexec sleep 60\n');
  chmodSync(hang, 0o755);
  const settings = (name: string) => ({
    replicator_state_dir: join(site.dir, `state-${name}`),
    replicator_queue: pgsql.uri,
    replicator_queue_schema: 'notifyshared',
    replication_max_watched_users: '0',
    replication_check_interval: '1h',
    replication_stop_timeout: '1s',
    dsync_remote_cmd: hang,
  });
  const a = startReplicator(site, { ...settings('a'), replication_notify_socket: notify, replication_max_conns: '1' }, ['--socket', join(site.dir, 'a.sock')]);
  const b = startReplicator(site, { ...settings('b'), replication_max_conns: '2' }, ['--socket', join(site.dir, 'b.sock')]);
  const all: Replicator[] = [a, b];
  try {
    await Promise.all(all.map((r) => r.waitFor(/started: 3 users/, 20_000)));
    // The checks at start sync everyone once.
    const synced = () => new Set([...a.syncs(), ...b.syncs()].map((l) => userOf(l.text)));
    await until(() => synced().size === 3, 60_000, () => `${a.log()}\n---\n${b.log()}`);
    // Each one's check queued every user it had not fingerprinted: all of that done first.
    const idle = () => {
      const out = control(site, ['--socket', join(site.dir, 'a.sock'), 'status', '--json']);
      const c = (JSON.parse(out.stdout) as { counts: Record<string, number> }).counts;
      return c.sync! + c.high! + c.low! + c.failedDue! + c.fullDue! + c.running! === 0;
    };
    // Idle and still idle a moment later: the check at start may queue a user just after its
    // first sync ended, and that sync of a's would otherwise be taken for the request's.
    const settled = async () => idle() && (await new Promise((r) => setTimeout(r, 1500)), idle());
    const deadline = Date.now() + 30_000;
    while (!(await settled())) {
      if (Date.now() > deadline) assert.fail(`not idle within 30 s:\n${a.log()}\n---\n${b.log()}`);
    }

    // a's only worker takes the hanging user.
    const home = join(site.dir, 'home', 's1');
    appendFileSync(site.passwdFile, `hang:{PLAIN}pw:${UID}:${GID}::${home}::userdb_mail=maildir:~/Maildir userdb_mail_replica=remote:hang.invalid\n`);
    const fromA = a.lines.length;
    assert.equal(control(site, ['--socket', join(site.dir, 'a.sock'), 'add', 'hang']).code, 0);
    await until(() => /hang/.test(control(site, ['--socket', join(site.dir, 'a.sock'), 'dsync-status']).stdout), 10_000, () => a.log());

    // The request waits on a, which cannot take it; b runs the sync (asked through its own socket).
    const fromB = b.lines.length;
    const pending = syncRequest(notify, 's2');
    await until(() => /s2/.test(control(site, ['--socket', join(site.dir, 'a.sock'), 'status', 's2']).stdout), 5000, () => 'not queued');
    assert.equal(control(site, ['--socket', join(site.dir, 'b.sock'), 'replicate', 's2']).code, 0);
    const r = await pending;
    assert.equal(r.answer, '+\n', `${a.log()}\n---\n${b.log()}`);
    assert.ok(r.ms < 15_000, `answered after ${r.ms} ms`);
    assert.ok(b.syncs('s2', fromB).length > 0, `b ran the sync:\n${b.log()}`);
    assert.equal(a.syncs('s2', fromA).length, 0, `a did not:\n${a.log()}\n---\n${b.log()}`);
    t.diagnostic(`the request was answered + after ${r.ms} ms, from the queue's record of b's sync (a busy machine)`);
  } finally {
    for (const r of all) r.child.kill('SIGTERM');
    for (const r of all) assert.equal(await r.exited, 0, r.log());
  }
});
