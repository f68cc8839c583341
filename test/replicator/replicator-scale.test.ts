/**
 * The replicator with 1,000 users (MAILFERRY_SOAK=1 only: the first syncs alone take minutes on
 * two cores): inotify watches stay within the watch limit's share, the users past it are looked
 * after by the periodic check, and the daemon's memory stays bounded. Each figure is printed.
 */
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { control, deliver, differences, holdings, makeReplicaSite, startReplicator, until } from './replica-site.js';

const SOAK = process.env.MAILFERRY_SOAK === '1';

/** inotify watches a process holds, from its fdinfo. */
function inotifyWatches(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      n += readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

test('1,000 users: watches bounded by the watch limit, memory bounded, users past the limit still replicated by the check', { skip: !SOAK && 'MAILFERRY_SOAK=1 runs it', timeout: 1_200_000 }, async () => {
  const site = makeReplicaSite({ users: 1000, messages: 3 });
  after(() => site.stop());
  const r = startReplicator(site, { replication_max_watched_users: '500', replication_check_interval: '5s', replication_max_conns: '4' });
  try {
    await r.waitFor(/started: 1000 users \(1000 new, 0 gone\), 500 watched/, 120_000);
    await until(() => new Set(r.syncs().map((l) => l.text.split(' ')[3])).size === 1000, 1_000_000, () => `${new Set(r.syncs().map((l) => l.text.split(' ')[3])).size} users synced`, 1000);
    const pid = r.child.pid!;
    const watches = inotifyWatches(pid);
    const folders = site.users.slice(0, 500).reduce((n, u) => n + u.folders.length, 0);
    // Both trees of a watched user (the mail and its replica): three watches a folder (its
    // directory, cur/ and new/; tmp/ is not watched), and a few for LAYOUT=fs parents.
    const allowed = 2 * 3 * folders + 2 * 500;
    const rss = rssKb(pid);
    process.stdout.write(`# 1000 users, 500 watched: ${watches} inotify watches (at most ${allowed} allowed), daemon RSS ${Math.round(rss / 1024)} MB\n`);
    assert.ok(watches > 0 && watches <= allowed, `${watches} watches`);
    assert.ok(rss < 400 * 1024, `RSS ${rss} kB`);
    // A user past the watch limit: the periodic check finds its new mail.
    const last = site.users[999]!;
    deliver(last.source, '', 'late');
    await until(() => differences(holdings(last.source), holdings(last.replica)).length === 0, 60_000, () => r.log().slice(-2000), 500);
    assert.match(control(site, ['status']).stdout, /^Users only checked periodically +500$/m);
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0);
  } finally {
    r.child.kill('SIGKILL');
  }
});
