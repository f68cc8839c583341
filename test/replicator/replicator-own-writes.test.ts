/**
 * The daemon in this process, over real Maildirs with real sync workers: a delivery is one sync,
 * as the sync's own writes into the watched replica are not queued again; and changes that land
 * just as a sync ends (after its last look at the mail, before its changes are judged: the
 * daemon's `sync-ended` moment) are never dropped: a delivery to the source and a flag change
 * on the replica made there each run a sync of their own and reach the other side.
 */
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { applyOverrides, DEFAULT_SETTINGS } from '../../src/config/settings.js';
import { ReplicatorDaemon } from '../../src/replicator/replicator-daemon.js';
import type { SyncReport } from '../../src/replicator/sync-report.js';
import { deliver, differences, filesIn, holdings, makeReplicaSite, setFlags, sleep, until, type ReplicaSite } from './replica-site.js';

let site: ReplicaSite;
let daemon: ReplicatorDaemon;
const reports: { at: number; r: SyncReport }[] = [];
const log: string[] = [];
const syncsOf = (user: string, since: number) => reports.filter((x) => x.r.user === user && x.at >= since);

before(async () => {
  site = makeReplicaSite({ users: 2, prefix: 'w' });
  const settings = applyOverrides(DEFAULT_SETTINGS, [
    `userdb=passwd-file:${site.passwdFile}`,
    `replicator_state_dir=${join(site.dir, 'state')}`,
    'mail_fsync=never',
    // Only the watcher queues users here: the periodic check would add syncs of its own.
    'replication_check_interval=1h',
  ]);
  daemon = await ReplicatorDaemon.start({
    settings,
    loadSettings: () => settings,
    selection: { kind: 'all' },
    socketPath: join(site.dir, 'own.sock'),
    verbose: false,
    debug: false,
    log: (l) => log.push(l),
  });
  daemon.on('synced', (r) => reports.push({ at: Date.now(), r }));
  await until(() => site.users.every((u) => syncsOf(u.name, 0).some((x) => x.r.result === 'ok')), 30_000, () => log.join('\n'));
  // The first syncs' echoes (the replica is watched only once it exists) pass.
  await quiet(1500);
});

after(async () => {
  await daemon?.stop();
  site?.stop();
});

/** Waits until no sync has ended for `ms`. */
async function quiet(ms: number): Promise<void> {
  await until(() => Date.now() - (reports.at(-1)?.at ?? 0) > ms, 20_000, () => log.join('\n'));
}

test('a delivery is one sync: the sync\'s own writes into the watched replica are not queued again', { timeout: 60_000 }, async () => {
  const u = site.users[0]!;
  for (let i = 0; i < 3; i++) {
    const since = Date.now();
    const dropped = daemon.ownWritesDropped;
    const id = deliver(u.source, u.folders[i % u.folders.length]!, 'one-sync');
    site.delivered.get(u.name)!.add(id);
    await until(() => holdings(u.replica).byId.has(id) && syncsOf(u.name, since).length > 0, 10_000, () => log.join('\n'));
    await quiet(1000);
    assert.deepEqual(syncsOf(u.name, since).map((x) => x.r.result), ['ok'], `one sync for delivery ${i}:\n${log.join('\n')}`);
    assert.ok(daemon.ownWritesDropped > dropped, 'its writes were judged its own');
    assert.deepEqual(differences(holdings(u.source), holdings(u.replica)), []);
  }
});

test('changes landing as a sync ends, after its last look at the mail, are synced: a delivery to the source, a flag change on the replica', { timeout: 60_000 }, async () => {
  const u = site.users[1]!;
  const folder = u.folders.at(-1)!;
  let racing: string | undefined;
  let flagged: string | undefined;
  const land = (user: string) => {
    if (user !== u.name || racing !== undefined) return;
    // In the sync's end: its worker has answered, its changes are not judged yet.
    racing = deliver(u.source, folder, 'racing');
    site.delivered.get(u.name)!.add(racing);
    const onReplica = filesIn(u.replica, '').find((p) => p.includes('/cur/'));
    assert.ok(onReplica, 'the replica holds a message to flag');
    assert.ok(setFlags(onReplica, 'FS'));
    flagged = onReplica.slice(onReplica.lastIndexOf('/') + 1).split(':')[0];
  };
  daemon.on('sync-ended', land);
  try {
    const since = Date.now();
    const first = deliver(u.source, '', 'trigger');
    site.delivered.get(u.name)!.add(first);
    await until(() => racing !== undefined && holdings(u.replica).byId.has(racing), 10_000, () => log.join('\n'));
    await until(() => differences(holdings(u.source), holdings(u.replica)).length === 0, 10_000, () => differences(holdings(u.source), holdings(u.replica)).join('\n'));
    const flaggedOnSource = filesIn(u.source, '').find((p) => p.includes(flagged!));
    assert.match(flaggedOnSource ?? '', /:2,FS$/, 'the flag change made on the replica reached the source');
    await quiet(1000);
    assert.equal(syncsOf(u.name, since).length, 2, 'the trigger\'s sync, and one for the changes that raced its end');
  } finally {
    daemon.off('sync-ended', land);
  }
});
