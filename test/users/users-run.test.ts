/**
 * backup and sync for users of a passwd-file userdb, through the built CLI: -A -d, masks, -F
 * with per-user destinations, unknown users (67), a template a user name would steer outside
 * its root (that user fails, the others finish), and, as root, files owned by each user.
 */
import { strict as assert } from 'node:assert';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, deliver, subjectsIn } from '../cli/cli-child.js';

const root = process.getuid?.() === 0;
// As root each user's run takes the user's uid: nobody's, for users the tests make up.
const UID = root ? 65534 : process.getuid!();
const GID = root ? 65534 : process.getgid!();

function chownTree(path: string): void {
  if (!root) return;
  chownSync(path, UID, GID);
  if (statSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e));
}

function site(users: string[], extra: (u: string) => string = () => '') {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-users-'));
  if (root) chownSync(dir, UID, GID);
  const lines: string[] = [];
  const subjects = new Map<string, string[]>();
  for (const u of users) {
    const home = join(dir, 'home', u);
    subjects.set(u, deliver(join(home, 'Maildir'), 3, u));
    deliver(join(home, 'Maildir', '.Work Stuff'), 1, `${u}-work`);
    lines.push(`${u}:{PLAIN}pw:${UID}:${GID}::${home}::userdb_mail=maildir:~/Maildir userdb_mail_replica=maildir:${dir}/replica/%u ${extra(u)}`);
  }
  mkdirSync(join(dir, 'replica'));
  writeFileSync(join(dir, 'users'), `# test users\n${lines.join('\n')}\n`);
  chownTree(dir);
  return { dir, subjects, args: ['-c', '', '-o', `userdb=passwd-file:${join(dir, 'users')}`] };
}

test('backup -A -d copies every user to their mail_replica, skips noreplicate users; a second run is a no-op', () => {
  const s = site(['u1', 'u2', 'u3', 'u4'], (u) => (u === 'u4' ? 'userdb_noreplicate=y' : ''));
  const r = cli([...s.args, 'backup', '-A', '-d', '-j', '2']);
  assert.equal(r.code, 0, r.stderr);
  for (const u of ['u1', 'u2', 'u3']) {
    assert.deepEqual(subjectsIn(join(s.dir, 'replica', u)).sort(), subjectsIn(join(s.dir, 'home', u, 'Maildir')).sort(), `${u}'s mail in the replica`);
    assert.equal(subjectsIn(join(s.dir, 'replica', u)).length, 4);
    if (root) assert.equal(statSync(join(s.dir, 'replica', u, 'dovecot-uidlist')).uid, UID, 'files belong to the user');
  }
  assert.match(r.stdout, /u4: skipped/);
  assert.match(r.stdout, /users: 4 \(3 ok, 0 incomplete, 0 failed, 1 skipped\)/);
  const again = cli([...s.args, 'backup', '-A', '-d', '--json']);
  assert.equal(again.code, 0, again.stderr);
  const lines = again.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.at(-1).totals.users, 4);
  for (const l of lines.slice(0, -1)) if (l.result === 'ok') assert.equal(l.saved, 0, `${l.user}: nothing to copy the second time`);
});

test('-u with a mask runs only the matching users; an unknown user exits 67 naming it', () => {
  const s = site(['ann', 'anton', 'bob']);
  const r = cli([...s.args, 'backup', '-u', 'an*', '-d']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(join(s.dir, 'replica')).sort(), ['ann', 'anton']);
  const missing = cli([...s.args, 'backup', '-u', 'carol', '-d']);
  assert.equal(missing.code, 67);
  assert.match(missing.stderr, /user carol: no such user/);
  const noMatch = cli([...s.args, 'backup', '-u', 'z*', '-d']);
  assert.equal(noMatch.code, 67);
});

test('-F: per-user destinations, blank lines, comments and duplicates; a user not in the userdb fails alone', () => {
  const s = site(['u1', 'u2']);
  const list = join(s.dir, 'list');
  writeFileSync(list, `# migration\n\nu1\t${`maildir:${s.dir}/moved/one`}\nu2\nu2\nghost\n`);
  chownTree(list);
  mkdirSync(join(s.dir, 'moved'));
  chownTree(join(s.dir, 'moved'));
  const r = cli([...s.args, 'sync', '-F', list, `maildir:${s.dir}/replica/%u`]);
  assert.equal(r.code, 67, r.stderr);
  assert.deepEqual(subjectsIn(join(s.dir, 'moved', 'one')).sort(), subjectsIn(join(s.dir, 'home', 'u1', 'Maildir')).sort());
  assert.deepEqual(subjectsIn(join(s.dir, 'replica', 'u2')).sort(), subjectsIn(join(s.dir, 'home', 'u2', 'Maildir')).sort());
  assert.match(r.stderr, /user u2 is listed again/);
  assert.match(r.stderr, /user ghost: no such user/);
  assert.match(r.stderr, /1 of 3 users failed: ghost/);
});

test('a user whose name would leave the template root fails with a clear error; the others finish', () => {
  const s = site(['good']);
  writeFileSync(join(s.dir, 'users'), `good:x:${UID}:${GID}::${s.dir}/home/good::userdb_mail=maildir:~/Maildir\n..:x:${UID}:${GID}::${s.dir}/home/good::userdb_mail=maildir:~/Maildir\n`);
  const r = cli([...s.args, 'backup', '-A', `maildir:${s.dir}/replica/%u`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /user \.\.: %\{user\} is '\.\.'/);
  assert.deepEqual(readdirSync(join(s.dir, 'replica')), ['good']);
});

test('bad input: a config file with a typo names file and line (78); -A without a userdb is a usage error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-conf-'));
  const conf = join(dir, 'mailferry.toml');
  writeFileSync(conf, 'mail_fsync = "never"\nlock_timout = 5\n');
  const r = cli(['-c', conf, 'backup', `maildir:${dir}/a`, `maildir:${dir}/b`]);
  assert.equal(r.code, 78);
  assert.match(r.stderr, new RegExp(`${conf} line 2: unknown setting 'lock_timout'`));
  const none = cli(['-c', '', 'backup', '-A', `maildir:${dir}/x/%u`]);
  assert.equal(none.code, 64);
  assert.match(none.stderr, /need a userdb/);
  const missing = cli(['-c', join(dir, 'nope.toml'), 'backup', `maildir:${dir}/a`, `maildir:${dir}/b`]);
  assert.equal(missing.code, 78);
});

test('a malformed passwd-file line fails its own user only; a directory named as the passwd-file is 78', () => {
  const s = site(['first', 'last']);
  const lines = readFileSync(join(s.dir, 'users'), 'utf8').trimEnd().split('\n');
  // Between the two good users: a uid that is neither a number nor an account.
  lines.splice(2, 0, `broken:x:no-such-account-here:${GID}::${s.dir}/home/first::userdb_mail=maildir:~/Maildir`);
  writeFileSync(join(s.dir, 'users'), `${lines.join('\n')}\n`);
  const r = cli([...s.args, 'backup', '-A', '-d']);
  assert.equal(r.code, 78, r.stderr);
  assert.match(r.stderr, /line 3: uid 'no-such-account-here'/);
  assert.match(r.stderr, /1 of 3 users failed: broken/);
  assert.deepEqual(readdirSync(join(s.dir, 'replica')).sort(), ['first', 'last'], 'the users around the bad line still ran');
  const mask = cli([...s.args, 'user', 'b*']);
  assert.equal(mask.code, 78, mask.stderr);
  assert.match(mask.stderr, /uid 'no-such-account-here'/);
  const dirAsFile = cli(['-c', '', '-o', `userdb=passwd-file:${s.dir}`, 'backup', '-A', '-d']);
  assert.equal(dirAsFile.code, 78, dirAsFile.stderr);
  assert.match(dirAsFile.stderr, /is a directory, not a file/);
});
