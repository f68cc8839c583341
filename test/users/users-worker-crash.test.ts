/**
 * A worker process that dies mid-user: that user fails with 75, the user already sent ahead to
 * the same worker runs on a new one, and no user runs twice or is left out. The worker kills
 * itself (SIGKILL) at its second backup's state record (MAILFERRY_FAILPOINT), so with -j 1 every
 * second user dies after its mail was copied and before its state was recorded.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, deliver, subjectsIn } from '../cli/cli-child.js';

const root = process.getuid?.() === 0;
const UID = root ? 65534 : process.getuid!();
const GID = root ? 65534 : process.getgid!();

function chownTree(path: string): void {
  if (!root) return;
  chownSync(path, UID, GID);
  if (statSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e));
}

test('a worker killed mid-user fails that user alone (75); the user sent ahead to it runs on a new worker, once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-users-crash-'));
  const users = ['u1', 'u2', 'u3', 'u4', 'u5'];
  const lines = users.map((u) => {
    deliver(join(dir, 'home', u, 'Maildir'), 2, u);
    return `${u}:{PLAIN}pw:${UID}:${GID}::${dir}/home/${u}::userdb_mail=maildir:~/Maildir userdb_mail_replica=maildir:${dir}/replica/%u`;
  });
  mkdirSync(join(dir, 'replica'));
  writeFileSync(join(dir, 'users'), `${lines.join('\n')}\n`);
  chownTree(dir);
  const r = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', '-c', '', '-o', `userdb=passwd-file:${join(dir, 'users')}`, 'backup', '-A', '-d', '-j', '1', '--json'], {
    encoding: 'utf8',
    env: { ...process.env, MAILFERRY_FAILPOINT: 'backup-before-state:2' },
  });
  assert.equal(r.status, 75, r.stderr);
  const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { user?: string; result?: string; exitCode?: number; error?: string });
  const perUser = results.filter((x) => x.user !== undefined);
  assert.deepEqual(perUser.map((x) => x.user).sort(), users, 'one line for every user, none twice');
  assert.deepEqual(perUser.filter((x) => x.result !== 'ok').map((x) => [x.user, x.exitCode]).sort(), [['u2', 75], ['u4', 75]]);
  assert.match(perUser.find((x) => x.user === 'u2')?.error ?? '', /the worker process running this user ended \(SIGKILL\); run again/);
  assert.match(r.stderr, /2 of 5 users failed: u2, u4/);
  for (const u of ['u1', 'u3', 'u5']) {
    assert.deepEqual(subjectsIn(join(dir, 'replica', u)).sort(), subjectsIn(join(dir, 'home', u, 'Maildir')).sort(), `${u}'s mail in its replica`);
  }
  // The failed users' runs are finished by the next run, without the failpoint.
  const again = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', '-c', '', '-o', `userdb=passwd-file:${join(dir, 'users')}`, 'backup', '-A', '-d'], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  for (const u of users) assert.deepEqual(subjectsIn(join(dir, 'replica', u)).sort(), subjectsIn(join(dir, 'home', u, 'Maildir')).sort(), `${u} after the rerun`);
});
