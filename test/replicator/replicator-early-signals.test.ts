/**
 * Signals that reach the replicator while it starts (the userdb read, the queue opened): a
 * SIGHUP must not end it, and a SIGTERM stops it once it runs, as it would have a moment later.
 * The status page's listening line is the first sign of life, logged before the daemon starts.
 * And a SIGTERM during a reload: the stop waits for the reload, which must not leave watches or
 * timers behind that keep the stopped process alive.
 */
import { strict as assert } from 'node:assert';
import { after, test } from 'node:test';
import { makeReplicaSite, startReplicator, type ReplicaSite } from './replica-site.js';

const sites: ReplicaSite[] = [];
after(() => {
  for (const s of sites) s.stop();
});

const LISTENING = /status page on http:/;

test('a SIGHUP during the start is a reload once the replicator runs, not its end', { timeout: 60_000 }, async () => {
  const site = makeReplicaSite({ users: 3, prefix: 'h' });
  sites.push(site);
  const r = startReplicator(site, {}, ['--http', '127.0.0.1:0']);
  try {
    await r.waitFor(LISTENING, 20_000);
    r.child.kill('SIGHUP');
    await r.waitFor(/started: 3 users/, 20_000);
    await r.waitFor(/SIGHUP: reloading/, 20_000);
    assert.equal(r.child.exitCode, null, r.log());
    r.child.kill('SIGTERM');
    const code = await Promise.race([r.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 20 s'), 20_000))]);
    assert.equal(code, 0, r.log());
  } finally {
    r.child.kill('SIGKILL');
  }
});

test('a SIGTERM during the start stops the replicator once it runs, with exit 0', { timeout: 60_000 }, async () => {
  const site = makeReplicaSite({ users: 3, prefix: 't' });
  sites.push(site);
  const r = startReplicator(site, {}, ['--http', '127.0.0.1:0']);
  try {
    await r.waitFor(LISTENING, 20_000);
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0, r.log());
    assert.match(r.log(), /SIGTERM: stopping/);
  } finally {
    r.child.kill('SIGKILL');
  }
});

test('a SIGTERM while a SIGHUP reload runs, with the first syncs running: the replicator stops and exits 0', { timeout: 60_000 }, async () => {
  const site = makeReplicaSite({ users: 3, prefix: 'r' });
  sites.push(site);
  const r = startReplicator(site);
  try {
    await r.waitFor(/started: 3 users/, 20_000);
    r.child.kill('SIGHUP');
    await r.waitFor(/SIGHUP: reloading/, 20_000);
    r.child.kill('SIGTERM');
    const code = await Promise.race([r.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 20 s'), 20_000))]);
    assert.equal(code, 0, r.log());
    assert.match(r.log(), /stopped/);
  } finally {
    r.child.kill('SIGKILL');
  }
});
