/**
 * The notify socket's settings through the built CLI: an owner that is no account, or a file
 * in the socket's place, stop the replicator at start with 78 and one line naming the setting
 * or the file (the file left as it was); SIGHUP takes up a new socket path and drops the old
 * socket, and a configuration without one closes it.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { makeReplicaSite, startReplicator, type ReplicaSite } from './replica-site.js';

const site = makeReplicaSite({ users: 1, prefix: 'k', messages: 1 });
after(() => site.stop());

/** The site with a configuration file in place of `-c ''`, so SIGHUP can read a changed one. */
function withConfig(file: string): ReplicaSite {
  return { ...site, args: (settings) => ['-c', file, ...site.args(settings).slice(2)] };
}

test('an owner that is no account, or a file in the socket\'s place, stop the start with 78 and a line naming it', { timeout: 30_000 }, async () => {
  const noOwner = startReplicator(site, { replication_notify_socket: join(site.dir, 'n.sock'), replication_notify_user: 'no-such-account-here' });
  assert.equal(await noOwner.exited, 78);
  assert.match(noOwner.log(), /replication_notify_user: uid 'no-such-account-here' is neither a number nor a system account/);
  assert.ok(!existsSync(join(site.dir, 'n.sock')));

  const file = join(site.dir, 'precious.txt');
  writeFileSync(file, 'keep me');
  const inTheWay = startReplicator(site, { replication_notify_socket: file });
  assert.equal(await inTheWay.exited, 78);
  assert.match(inTheWay.log(), /replication notify socket .*precious\.txt exists and is not a socket/);
  assert.equal(readFileSync(file, 'utf8'), 'keep me');
});

test('SIGHUP moves the notify socket to a new path, and closes it when the setting goes', { timeout: 30_000 }, async () => {
  const config = join(site.dir, 'mailferry.toml');
  const a = join(site.dir, 'notify-a');
  const b = join(site.dir, 'notify-b');
  writeFileSync(config, `replication_notify_socket = "${a}"\n`);
  const r = startReplicator(withConfig(config), { replication_check_interval: '1h' });
  try {
    await r.waitFor(/started: .*Dovecot notify socket .*notify-a and fifo .*notify-a-fifo/, 20_000);
    assert.ok(statSync(a).isSocket());
    // The CLI takes SIGHUP once start() has returned; the first sync comes after that.
    await r.waitFor(/user k1: full sync/, 20_000);
    writeFileSync(config, `replication_notify_socket = "${b}"\n`);
    let from = r.lines.length;
    r.child.kill('SIGHUP');
    await r.waitFor(/Dovecot notify socket .*notify-b and fifo .*notify-b-fifo/, 10_000, from);
    await r.waitFor(/reloaded:/, 10_000, from);
    assert.ok(!existsSync(a), 'the old socket is gone');
    assert.ok(statSync(b).isSocket() && statSync(`${b}-fifo`).isFIFO());
    writeFileSync(config, '# no notify socket\n');
    from = r.lines.length;
    r.child.kill('SIGHUP');
    await r.waitFor(/no Dovecot notify socket any more/, 10_000, from);
    assert.ok(!existsSync(b));
  } finally {
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0, r.log());
  }
});
