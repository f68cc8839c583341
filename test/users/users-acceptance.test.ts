/**
 * Runs over many users, judged by Dovecot: a passwd-file of 50 users whose mail Dovecot wrote
 * (Maildir++, LAYOUT=fs and mbox, folders with spaces, unicode and dots, some users with their
 * own mail location, some noreplicate) and, as root, system accounts of the passwd userdb.
 * The same users in PostgreSQL (the sql userdb) give the same replicas. `backup -A -d`, a `-u` mask, `-F` with per-user destinations and `sync -A -d` after changes on
 * both sides must each leave, per user, a copy doveadm reads with the source's UIDs,
 * UIDVALIDITY, UIDNEXT, flags, keywords, mailbox and message GUIDs; files belong to the user and
 * are no more readable than the source's. Bad input fails the user it concerns (or the run, for
 * a broken configuration) with the README's exit status; a run killed with SIGKILL halfway
 * through, run again, ends exact and without a duplicate.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { CLI, cliChild, type CliResult } from '../cli/cli-child.js';
import { startPostgres } from '../support/postgres.js';
import {
  eachLimit,
  looseShapes,
  maildirBodies,
  makeUserSite,
  nameShape,
  ROOT,
  walkTree,
  type MailView,
  type SiteUser,
  type UserSite,
} from '../support/user-site.js';

/**
 * The built CLI in its own process group. One that outlives `ms` is killed whole, workers too,
 * and fails the test with what it printed and where its processes wait: a hang must not stall
 * the suite for the runner's ten minutes.
 */
function cli(args: readonly string[], options: { uid?: number; gid?: number } = {}, ms = 120_000): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, '-o', 'mail_fsync=never', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  let hung = '';
  const timer = setTimeout(() => {
    try {
      hung = execFileSync('ps', ['-o', 'pid,stat,wchan:20,args', '-g', String(child.pid)], { encoding: 'utf8' });
    } catch {
      hung = '(no ps)';
    }
    process.kill(-child.pid!, 'SIGKILL');
  }, ms);
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      if (hung) reject(new Error(`mailferry ${args.join(' ')} still ran after ${ms / 1000}s:\n${hung}\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
      else resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Where a location keeps its files (the path after the scheme). */
const pathOf = (location: string) => location.split(':')[1]!;

/** The same mail as doveadm reads it; GUIDs compared where both stores keep them (not mbox). */
function assertSameMail(source: MailView, copy: MailView, what: string): void {
  assert.deepEqual([...copy.keys()].sort(), [...source.keys()].sort(), `${what}: mailboxes`);
  for (const [name, want] of source) {
    const got = copy.get(name)!;
    const guids = want.guid !== '' && got.guid !== '';
    assert.deepEqual(
      { messages: got.messages, uidvalidity: got.uidvalidity, uidnext: got.uidnext, guid: guids ? got.guid : '' },
      { messages: want.messages, uidvalidity: want.uidvalidity, uidnext: want.uidnext, guid: guids ? want.guid : '' },
      `${what}: status of ${name}`,
    );
    const msgGuids = want.mail.every((m) => m.guid !== '') && got.mail.every((m) => m.guid !== '');
    const shape = (v: typeof want) =>
      v.mail.map((m) => ({ uid: m.uid, flags: m.flags, size: m.size, messageId: m.messageId, guid: msgGuids ? m.guid : '' }));
    assert.deepEqual(shape(got), shape(want), `${what}: messages of ${name}`);
  }
}

/**
 * As root: every entry of `tree` is the user's, and whatever the group or others may read is
 * of a kind the user's home held readable before any run (Dovecot's dovecot-uidvalidity.<hex>
 * is 0444).
 */
function assertOwnedAndPrivate(user: SiteUser, tree: string, loose: Set<string>): void {
  if (!ROOT) return;
  for (const e of walkTree(tree)) {
    assert.deepEqual([e.uid, e.gid], [user.uid, user.gid], `${e.path} belongs to ${user.name}`);
    if ((e.mode & 0o077) !== 0) {
      assert.ok(loose.has(nameShape(e.path)), `${e.path} is mode ${e.mode.toString(8)}, readable beyond ${user.name} where nothing of its kind in the source is`);
    }
  }
}

const replicating = (site: UserSite) => site.users.filter((u) => !u.system && !u.noreplicate);
const passwdUsers = (site: UserSite) => site.users.filter((u) => !u.system);

describe('users and configuration: 50 users with doveadm as the oracle', { timeout: 600_000 }, () => {
  let site: UserSite;
  /** doveadm's view of each user's own mail, taken before any mailferry run wrote to it. */
  const sources = new Map<string, MailView>();
  /** Name shapes the group or others could read in each home before any run. */
  const loose = new Map<string, Set<string>>();

  before(async () => {
    site = await makeUserSite({ users: 50, systemUsers: ROOT ? 4 : 0 });
    await eachLimit(site.users, 2, async (u) => {
      sources.set(u.name, await site.view(u, u.mail));
      loose.set(u.name, looseShapes(u.home));
    });
  });
  after(async () => {
    await site?.stop();
  });

  it('the oracle sees the mail the site was seeded with (so a comparison can fail)', () => {
    for (const u of site.users) {
      const view = sources.get(u.name)!;
      const seeded = site.seeded.get(u.name)!;
      assert.deepEqual([...view.keys()].sort(), [...seeded.keys()].sort(), `${u.name}: mailboxes`);
      for (const [box, ids] of seeded) assert.deepEqual(view.get(box)!.mail.map((m) => m.messageId).sort(), [...ids].sort(), `${u.name} ${box}`);
      assert.ok(view.get('INBOX')!.uidnext > view.get('INBOX')!.mail.at(-1)!.uid + 1 || view.get('INBOX')!.mail[1]!.uid === 3, `${u.name}: INBOX has a UID gap`);
    }
    const layouts = new Set(passwdUsers(site).map((u) => u.layout));
    assert.deepEqual([...layouts].sort(), ['fs', 'maildir++', 'mbox']);
  });

  it('backup -A -d: every replicating user gets an exact replica, noreplicate users none; files are the user\'s; a second run copies nothing', async () => {
    const r = await cli([...site.args, 'backup', '-A', '-d', '-j', '2']);
    assert.equal(r.code, 0, r.stderr);
    const skipped = passwdUsers(site).filter((u) => u.noreplicate);
    assert.equal(skipped.length, 4);
    assert.match(r.stdout, new RegExp(`users: 50 \\(46 ok, 0 incomplete, 0 failed, 4 skipped\\)`));
    for (const u of skipped) {
      assert.match(r.stdout, new RegExp(`^${u.name}: skipped: user ${u.name} has noreplicate set$`, 'm'));
      assert.ok(!existsSync(join(site.dir, 'replica', u.name)) && !existsSync(join(site.dir, 'replica-default', u.name)), `${u.name} has no replica`);
    }
    assert.equal(readdirSync(join(site.dir, 'replica')).length + readdirSync(join(site.dir, 'replica-default')).length, 46);
    await eachLimit(replicating(site), 2, async (u) => {
      assertSameMail(sources.get(u.name)!, await site.view(u, u.replica!), `${u.name}'s replica`);
      assertOwnedAndPrivate(u, pathOf(u.replica!), loose.get(u.name)!);
      // The source too: mailferry's own index in it must be neither root's (Dovecot could not
      // work) nor more open than Dovecot's files.
      assertOwnedAndPrivate(u, u.home, loose.get(u.name)!);
    });

    const again = await cli([...site.args, 'backup', '-A', '-d', '--json']);
    assert.equal(again.code, 0, again.stderr);
    const lines = again.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).totals.users, 50);
    for (const l of lines.slice(0, -1)) {
      if (l.result === 'skipped') continue;
      assert.equal(l.result, 'ok', JSON.stringify(l));
      assert.deepEqual([l.saved, l.expunged, l.flagUpdates, l.treeActions], [0, 0, 0, 0], `${l.user}: nothing to do the second time`);
    }
  });

  it('the same users from PostgreSQL (sql userdb): backup -A -d gives each replicating user an exact replica, noreplicate users none', async () => {
    const pgsql = await startPostgres();
    try {
      await pgsql.query('CREATE DATABASE site');
      const db = new pg.Client({ connectionString: pgsql.uriFor('site') });
      await db.connect();
      try {
        await db.query('CREATE TABLE users (userid text PRIMARY KEY, home text, uid integer, gid integer, mail text, mail_replica text, noreplicate boolean)');
        for (const u of passwdUsers(site)) {
          const fs = u.layout === 'maildir++' ? '' : ':LAYOUT=fs';
          await db.query('INSERT INTO users VALUES ($1, $2, $3, $4, $5, $6, $7)', [
            u.name, u.home, u.uid, u.gid, u.layout === 'maildir++' ? null : u.mail, `maildir:${site.dir}/replica-sql/%u${fs}`, u.noreplicate ? true : null,
          ]);
        }
      } finally {
        await db.end();
      }
      site.sharedDir('replica-sql');
      const conf = join(site.dir, 'sql.toml');
      writeFileSync(conf, [
        'mail_location = "maildir:~/Maildir"',
        '[userdb]',
        'driver = "sql"',
        `connect = "${pgsql.uriFor('site')}"`,
        `user_query = "SELECT home, uid, gid, mail, mail_replica, noreplicate FROM users WHERE userid = '%u'"`,
        'iterate_query = "SELECT userid AS user FROM users ORDER BY userid"',
        '',
      ].join('\n'));
      const r = await cli(['-c', conf, 'backup', '-A', '-d', '-j', '2']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /users: 50 \(46 ok, 0 incomplete, 0 failed, 4 skipped\)/);
      assert.equal(readdirSync(join(site.dir, 'replica-sql')).length, 46);
      await eachLimit(replicating(site), 2, async (u) => {
        const replica = `maildir:${site.dir}/replica-sql/${u.name}${u.layout === 'maildir++' ? '' : ':LAYOUT=fs'}`;
        assertSameMail(sources.get(u.name)!, await site.view(u, replica), `${u.name}'s replica from the sql userdb`);
        assertOwnedAndPrivate(u, pathOf(replica), loose.get(u.name)!);
      });
    } finally {
      await pgsql.stop();
    }
  });

  it("backup -u 'u1*' runs exactly the matching users (noreplicate means nothing without -d)", async () => {
    const dest = site.sharedDir('masked');
    const r = await cli([...site.args, 'backup', '-u', 'u1*', '-j', '2', `maildir:${dest}/%u:LAYOUT=fs`]);
    assert.equal(r.code, 0, r.stderr);
    const matching = passwdUsers(site).filter((u) => /^u1\d?$/.test(u.name));
    assert.equal(matching.length, 11);
    assert.deepEqual(readdirSync(dest).sort(), matching.map((u) => u.name).sort());
    await eachLimit(matching, 2, async (u) => {
      assertSameMail(sources.get(u.name)!, await site.view(u, `maildir:${dest}/${u.name}:LAYOUT=fs`), `${u.name} under the mask`);
      assertOwnedAndPrivate(u, join(dest, u.name), loose.get(u.name)!);
    });
  });

  it('-F: per-user destinations (Maildir++, LAYOUT=fs, mbox), blank lines, comments, a duplicate and an unknown user, who alone fails (67)', async () => {
    const moved = site.sharedDir('moved');
    const dest = site.sharedDir('listed');
    const u = (name: string) => site.users.find((x) => x.name === name)!;
    const list = join(site.dir, 'wave1.list');
    writeFileSync(list, [
      '# migration, wave 1',
      '',
      `u2\tmaildir:${moved}/second`,
      'u3\t',
      '   ',
      'u7',
      '  # an indented comment',
      'u7',
      'ghost',
      `u20\tmbox:${moved}/u20-mbox`,
      `u33\tmaildir:${moved}/thirty-three:LAYOUT=fs`,
      'u12',
      '',
    ].join('\n'));
    const r = await cli([...site.args, 'backup', '-F', list, '-j', '2', `maildir:${dest}/%u:LAYOUT=fs`]);
    assert.equal(r.code, 67, r.stderr);
    assert.match(r.stderr, /line 8: user u7 is listed again; run once/);
    assert.match(r.stderr, new RegExp(`user ghost: no such user in passwd-file ${site.passwdFile}`));
    assert.match(r.stderr, /1 of 7 users failed: ghost$/m);
    assert.match(r.stdout, /users: 7 \(6 ok, 0 incomplete, 1 failed, 0 skipped\)/);
    const expect: [string, string][] = [
      ['u2', `maildir:${moved}/second`],
      ['u3', `maildir:${dest}/u3:LAYOUT=fs`],
      ['u7', `maildir:${dest}/u7:LAYOUT=fs`],
      ['u20', `mbox:${moved}/u20-mbox`],
      ['u33', `maildir:${moved}/thirty-three:LAYOUT=fs`],
      ['u12', `maildir:${dest}/u12:LAYOUT=fs`],
    ];
    assert.deepEqual(readdirSync(dest).sort(), ['u12', 'u3', 'u7']);
    assert.deepEqual(readdirSync(moved).sort(), ['second', 'thirty-three', 'u20-mbox']);
    for (const [name, location] of expect) {
      assertSameMail(sources.get(name)!, await site.view(u(name), location), `${name} at ${location}`);
      assertOwnedAndPrivate(u(name), pathOf(location), loose.get(name)!);
    }
  });

  it('sync -A -d after changes on both sides: new mail, flags and expunges meet; both sides exact; a second sync changes nothing', async () => {
    const changed = replicating(site).filter((u, k) => k % 5 === 0 || u.layout !== 'maildir++');
    assert.ok(changed.some((u) => u.layout === 'mbox') && changed.some((u) => u.layout === 'fs'));
    const expected = new Map<string, { added: string[]; gone: string[]; flagged: string[] }>();
    let spare = 0;
    await eachLimit(changed, 2, async (u) => {
      const before = sources.get(u.name)!;
      const inbox = before.get('INBOX')!.mail;
      const other = [...before.keys()].find((b) => b !== 'INBOX')!;
      const otherMail = before.get(other)!.mail;
      const sep = u.layout === 'maildir++' ? '.' : '/';
      const fromSource = site.spare[spare++]!;
      const fromReplica = site.spare[spare++]!;
      const replicaAt = `${u.replica!}:INDEX=MEMORY`;
      // In the user's own mail, as their IMAP session would: Dovecot with its index.
      await site.doveadm(u, u.mail, ['save', '-m', 'INBOX'], fromSource);
      await site.doveadm(u, u.mail, ['batch', '%',
        'flags', 'add', '\\Answered kw-source', 'mailbox', 'INBOX', 'uid', String(inbox[0]!.uid), '%',
        'expunge', 'mailbox', other.split('/').join(sep), 'uid', String(otherMail[0]!.uid)]);
      // In the replica, as after a failover to it; INDEX=MEMORY keeps Dovecot's index out of it.
      await site.doveadm(u, replicaAt, ['save', '-m', 'INBOX'], fromReplica);
      await site.doveadm(u, replicaAt, ['batch', '%',
        'flags', 'add', 'kw-replica', 'mailbox', 'INBOX', 'uid', String(inbox.at(-1)!.uid), '%',
        'expunge', 'mailbox', 'INBOX', 'uid', String(inbox[0]!.uid)]);
      expected.set(u.name, {
        added: [fromSource, fromReplica].map((m) => /^message-id: *(<[^>]+>)/im.exec(m.toString('latin1'))![1]!),
        gone: [inbox[0]!.messageId, otherMail[0]!.messageId],
        flagged: inbox.length > 1 ? [inbox.at(-1)!.messageId] : [],
      });
    });

    const r = await cli([...site.args, 'sync', '-A', '-d', '-j', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /users: 50 \(46 ok, 0 incomplete, 0 failed, 4 skipped\)/);
    await eachLimit(replicating(site), 2, async (u) => {
      const mine = await site.view(u, u.mail);
      const replica = await site.view(u, u.replica!);
      const earlier = sources.get(u.name)!;
      // What later tests compare with, whatever this one finds.
      sources.set(u.name, mine);
      assertSameMail(mine, replica, `${u.name} after sync`);
      const want = expected.get(u.name);
      if (!want) {
        assertSameMail(earlier, mine, `${u.name} (unchanged) after sync`);
      } else {
        const ids = [...mine.values()].flatMap((b) => b.mail.map((m) => m.messageId));
        for (const id of want.added) assert.equal(ids.filter((x) => x === id).length, 1, `${u.name}: ${id} once on both sides`);
        for (const id of want.gone) assert.ok(!ids.includes(id), `${u.name}: ${id} expunged on one side is gone from both`);
        for (const id of want.flagged) {
          const m = [...mine.values()].flatMap((b) => b.mail).find((x) => x.messageId === id)!;
          assert.ok(m.flags.includes('kw-replica'), `${u.name}: the replica's keyword reached the source`);
        }
        const count = [...earlier.values()].reduce((n, b) => n + b.messages, 0);
        assert.equal(ids.length, count + 2 - 2, `${u.name}: two messages in, two out`);
      }
      assertOwnedAndPrivate(u, u.home, loose.get(u.name)!);
      assertOwnedAndPrivate(u, pathOf(u.replica!), loose.get(u.name)!);
    });

    const again = await cli([...site.args, 'sync', '-A', '-d', '--json']);
    assert.equal(again.code, 0, again.stderr);
    for (const l of again.stdout.trim().split('\n').slice(0, -1).map((x) => JSON.parse(x))) {
      if (l.result === 'skipped') continue;
      assert.deepEqual([l.result, l.saved, l.expunged, l.flagUpdates, l.treeActions], ['ok', 0, 0, 0, 0], `${l.user}: a second sync changes nothing (${JSON.stringify(l)})`);
    }
  });

  it('the passwd userdb: system accounts between first_valid_uid and last_valid_uid, each backed up under its own uid', { skip: ROOT ? false : 'system accounts need root (useradd)' }, async () => {
    const system = site.users.filter((u) => u.system);
    const [first, , third, outside] = system as [SiteUser, SiteUser, SiteUser, SiteUser];
    const dest = site.sharedDir('system');
    const args = ['-c', '', '-o', 'userdb=passwd', '-o', `first_valid_uid=${first.uid}`, '-o', `last_valid_uid=${third.uid}`, '-o', 'mail_location=maildir:~/Maildir'];
    const r = await cli([...args, 'backup', '-A', '-j', '2', `maildir:${dest}/%u`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /users: 3 \(3 ok, 0 incomplete, 0 failed, 0 skipped\)/);
    assert.deepEqual(readdirSync(dest).sort(), system.slice(0, 3).map((u) => u.name).sort(), 'the account past last_valid_uid is not a user');
    for (const u of system.slice(0, 3)) {
      assertSameMail(sources.get(u.name)!, await site.view(u, `maildir:${dest}/${u.name}`), `system user ${u.name}`);
      assertOwnedAndPrivate(u, join(dest, u.name), loose.get(u.name)!);
    }
    const past = await cli([...args, 'backup', '-u', outside.name, `maildir:${dest}/%u`]);
    assert.equal(past.code, 67, past.stderr);
    assert.match(past.stderr, new RegExp(`user ${outside.name}: no such user in passwd`));
  });

  it('SIGKILL to the whole run halfway through 50 users, then a rerun: exit 0, every user exact, nothing twice, no temporary files left', async (t) => {
    const dest = site.sharedDir('killed');
    const args = [...site.args, 'backup', '-A', '-j', '2', `maildir:${dest}/%u:LAYOUT=fs`];
    // Its own process group: the kill reaches the workers (and mbox lock holders) as a crash would.
    const run = cliChild(args, { detached: true });
    let ended = false;
    void run.exited.then(() => (ended = true));
    // Kill as soon as a sixth user's copy appears: that user is mid-copy, five are done or nearly.
    const deadline = Date.now() + 60_000;
    while (!ended && Date.now() < deadline && readdirSync(dest).length < 6) await sleep(5);
    assert.ok(!ended, `the run ended by itself before it could be killed: ${run.output.stderr}`);
    process.kill(-run.child.pid!, 'SIGKILL');
    const code = await run.exited;
    assert.equal(code, 137, `the run was killed, not finished (${run.output.stdout.slice(-300)})`);
    const started = readdirSync(dest);
    const reported = run.output.stdout.split('\n').filter((l) => /^u\d+: ok/.test(l)).length;
    assert.ok(started.length >= 6 && started.length < 50, `killed with ${started.length} of 50 users started`);
    assert.ok(started.length > reported, `some user was mid-run at the kill (${started.length} started, ${reported} reported)`);
    let partial = 0;
    for (const name of started) {
      const want = [...sources.get(name)!.values()].reduce((n, b) => n + b.messages, 0);
      if (maildirBodies(join(dest, name)).length < want) partial++;
    }
    t.diagnostic(`killed after ${reported} users reported, ${started.length} started, ${partial} holding part of their mail`);

    const rerun = await cli(args);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stdout, /users: 50 \(50 ok, 0 incomplete, 0 failed, 0 skipped\)/);
    assert.equal(readdirSync(dest).length, 50);
    await eachLimit(passwdUsers(site), 2, async (u) => {
      const at = `maildir:${dest}/${u.name}:LAYOUT=fs`;
      assertSameMail(sources.get(u.name)!, await site.view(u, at), `${u.name} after the rerun`);
      const bodies = maildirBodies(join(dest, u.name));
      const want = [...sources.get(u.name)!.values()].reduce((n, b) => n + b.messages, 0);
      assert.equal(bodies.length, want, `${u.name}: one file per message`);
      assert.equal(new Set(bodies.map((b) => b.hash)).size, bodies.length, `${u.name}: no body twice`);
      assert.equal(new Set(bodies.map((b) => b.messageId)).size, bodies.length, `${u.name}: no Message-ID twice`);
      const leftovers = walkTree(join(dest, u.name)).filter((e) => !e.dir && /\/tmp\/[^/]+$/.test(e.path));
      assert.deepEqual(leftovers.map((e) => e.path), [], `${u.name}: no temporary files left`);
      assertOwnedAndPrivate(u, join(dest, u.name), loose.get(u.name)!);
    });
  });

  describe('bad input', () => {
    it('a configuration file with a typo: 78 naming file and line, and no user runs', async () => {
      const conf = join(site.dir, 'mailferry.toml');
      writeFileSync(conf, [
        '# the site',
        `userdb = "passwd-file:${site.passwdFile}"`,
        'mail_location = "maildir:~/Maildir"',
        `mail_replika = "maildir:${site.dir}/typo/%u"`,
        '',
      ].join('\n'));
      const r = await cli(['-c', conf, 'backup', '-A', '-d']);
      assert.equal(r.code, 78, r.stderr);
      assert.match(r.stderr, new RegExp(`${conf} line 4: unknown setting 'mail_replika'`));
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      assert.equal(r.stdout, '');
      assert.ok(!existsSync(join(site.dir, 'typo')));
      writeFileSync(conf, `userdb = "passwd-file:${site.passwdFile}"\nfirst_valid_uid = "five hundred"\n`);
      const value = await cli(['-c', conf, 'backup', '-A', '-d']);
      assert.equal(value.code, 78, value.stderr);
      assert.match(value.stderr, new RegExp(`${conf} line 2: .*first_valid_uid`));
    });

    it('users whose name or home would leave the template root fail alone, naming the user; the other 50 finish; exit 65', async () => {
      const hostile = join(site.dir, 'users-hostile');
      const home = join(site.dir, 'home', 'u1');
      const lines = [
        `../escape:{PLAIN}x:${site.users[0]!.uid}:${site.users[0]!.gid}::${home}::`,
        `..:{PLAIN}x:${site.users[0]!.uid}:${site.users[0]!.gid}::${home}::`,
        `mallory:{PLAIN}x:${site.users[0]!.uid}:${site.users[0]!.gid}::${site.dir}/home/../../../etc::`,
      ];
      writeFileSync(hostile, `${lines[0]}\n${readFileSync(site.passwdFile, 'utf8')}${lines.slice(1).join('\n')}\n`);
      const args = site.args.map((a) => (a === `userdb=passwd-file:${site.passwdFile}` ? `userdb=passwd-file:${hostile}` : a));
      const original = readdirSync(site.dir).sort();
      const r = await cli([...args, 'backup', '-A', '-d', '-j', '2']);
      assert.equal(r.code, 65, r.stderr);
      assert.match(r.stderr, /user \.\.\/escape: failed \(exit 65\): user \.\.\/escape: %\{user\} contains '\/'/);
      assert.match(r.stderr, /user \.\.: failed \(exit 65\): user \.\.: %\{user\} is '\.\.'/);
      assert.match(r.stderr, /user mallory: failed \(exit 65\): user mallory: home '[^']*' is not an absolute path without '\.\.'/);
      assert.match(r.stderr, /3 of 53 users failed: \.\.\/escape, \.\., mallory$/m);
      assert.match(r.stdout, /users: 53 \(46 ok, 0 incomplete, 3 failed, 4 skipped\)/);
      assert.deepEqual(readdirSync(site.dir).sort(), original, 'nothing new beside the site');
      assert.ok(!existsSync('/etc/Maildir') && !existsSync(join(site.dir, 'escape')));
    });

    it('unknown users: 67 naming them, the known ones run; a mask matching nobody is 67 too', async () => {
      const r = await cli([...site.args, 'backup', '-u', 'u4', '-u', 'nosuch', '-d']);
      assert.equal(r.code, 67, r.stderr);
      assert.match(r.stderr, new RegExp(`user nosuch: no such user in passwd-file ${site.passwdFile}`));
      assert.match(r.stdout, /^u4: ok/m);
      assert.match(r.stdout, /users: 2 \(1 ok, 0 incomplete, 1 failed, 0 skipped\)/);
      const mask = await cli([...site.args, 'backup', '-u', 'zz*', '-d']);
      assert.equal(mask.code, 67, mask.stderr);
      assert.match(mask.stderr, new RegExp(`no user of passwd-file ${site.passwdFile} matches 'zz\\*'`));
    });

    it('a missing passwd-file is a configuration error (78), an unreadable one permission denied (77), each naming the file', async () => {
      const missing = join(site.dir, 'no-such-users');
      const args = (file: string) => ['-c', '', '-o', `userdb=passwd-file:${file}`, '-o', 'mail_location=maildir:~/Maildir'];
      const r = await cli([...args(missing), 'backup', '-A', '-d']);
      assert.equal(r.code, 78, r.stderr);
      assert.match(r.stderr, new RegExp(`passwd-file ${missing}: no such file`));
      if (!ROOT) return;
      // Root reads any file; the check is made as nobody, for whom the site's file is closed.
      const closed = join(site.dir, 'closed');
      mkdirSync(closed, { mode: 0o711 });
      const file = join(closed, 'users');
      writeFileSync(file, readFileSync(site.passwdFile, 'utf8'), { mode: 0o600 });
      chmodSync(file, 0o600);
      const denied = await cli([...args(file), 'backup', '-A', `maildir:${closed}/%u`], { uid: 65534, gid: 65534 });
      assert.equal(denied.code, 77, denied.stderr);
      assert.match(denied.stderr, new RegExp(`passwd-file ${file}: permission denied`));
      assert.equal(readdirSync(closed).length, 1, 'no user ran');
    });
  });
});
