/**
 * `mailferry user` and `mailferry config` through the built CLI: a passwd-file userdb read as
 * Dovecot reads it (doveadm user as the oracle), locations expanded as runs expand them, masks,
 * -F, unknown users (67), templates a user name would steer outside its root (65, as the run
 * gives), a static userdb, no userdb (78); the configuration printed as TOML that reads back to
 * the same settings, with every password masked, and config file typos named by file and line.
 */
import { strict as assert } from 'node:assert';
import { chownSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { parse } from 'smol-toml';
import { renderConfig } from '../../src/config/config-toml.js';
import { maskConnect, maskPasswords, MASK } from '../../src/config/secret-mask.js';
import { DEFAULT_SETTINGS, SETTINGS } from '../../src/config/settings.js';
import { grantDovecotAccess, startDovecot } from '../support/dovecot.js';
import { cli } from './cli-child.js';

const root = process.getuid?.() === 0;
const UID = root ? 65534 : process.getuid!();
const GID = root ? 65534 : process.getgid!();

function chownTree(path: string): void {
  if (!root) return;
  chownSync(path, UID, GID);
  if (statSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e));
}

/** A passwd-file userdb as Dovecot sites write them, in a fresh directory. */
function site(lines: (dir: string) => string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-userinfo-'));
  writeFileSync(join(dir, 'users'), `# users of the test site\n\n${lines(dir).join('\n')}\n`);
  chownTree(dir);
  return { dir, users: join(dir, 'users'), args: ['-c', '', '-o', `userdb=passwd-file:${join(dir, 'users')}`] };
}

const line = (user: string, home: string, extra = '') => `${user}:{PLAIN}pw:${UID}:${GID}::${home}::${extra}`;

function standardSite() {
  return site((dir) => [
    line('alice', `${dir}/home/alice`, `userdb_mail=maildir:~/Maildir userdb_mail_replica=maildir:${dir}/replica/%u userdb_quota_rule=*:storage=1G`),
    line('ann.lee@example.org', `${dir}/home/ann`),
    line('bob', `${dir}/home/bob`, 'userdb_noreplicate=y userdb_mail=maildir:~/Mail'),
    line('jörg', `${dir}/home/jörg`),
  ]);
}

/** Blocks of `field<TAB>value` lines after doveadm's header, as field -> values. */
function blocks(stdout: string): Map<string, string>[] {
  const [header, ...rest] = stdout.replace(/\n$/, '').split('\n');
  assert.equal(header, 'field\tvalue');
  return rest.join('\n').split('\n\n').map((b) => {
    const m = new Map<string, string>();
    for (const l of b.split('\n')) {
      const tab = l.indexOf('\t');
      assert.ok(tab > 0, `a field<TAB>value line: ${JSON.stringify(l)}`);
      assert.ok(!m.has(l.slice(0, tab)), `field ${l.slice(0, tab)} once per user`);
      m.set(l.slice(0, tab), l.slice(tab + 1));
    }
    return m;
  });
}

const settingsArgs = (dir: string) => ['-o', `mail_location=maildir:${dir}/mail/%d/%n`, '-o', `mail_replica=maildir:${dir}/replica/%Ud/%2.1n/%n`];

test('user: the fields doveadm user shows for the same passwd-file, and the locations a run would use, templates expanded', async () => {
  const s = standardSite();
  const r = cli([...s.args, ...settingsArgs(s.dir), 'user', 'alice', 'ann.lee@example.org', 'bob', 'jörg']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const [alice, ann, bob, jorg] = blocks(r.stdout);
  assert.deepEqual([...alice!.keys()], ['user', 'uid', 'gid', 'home', 'mail', 'mail_replica', 'noreplicate', 'quota_rule']);
  assert.equal(alice!.get('user'), 'alice');
  // Numbers as the userdb gives them, with the account's names where the system has them.
  assert.match(alice!.get('uid')!, root ? /^65534 \(nobody\)$/ : new RegExp(`^${UID}( \\(\\S+\\))?$`));
  assert.match(alice!.get('gid')!, new RegExp(`^${GID}( \\(\\S+\\))?$`));
  assert.equal(alice!.get('home'), `${s.dir}/home/alice`);
  assert.equal(alice!.get('mail'), `maildir:${s.dir}/home/alice/Maildir`);
  assert.equal(alice!.get('mail_replica'), `maildir:${s.dir}/replica/alice`);
  assert.equal(alice!.get('noreplicate'), 'no');
  assert.equal(alice!.get('quota_rule'), '*:storage=1G');
  // The setting's templates, with modifiers and a substring: the userdb gives no mail of its own.
  assert.equal(ann!.get('mail'), `maildir:${s.dir}/mail/example.org/ann.lee`);
  assert.equal(ann!.get('mail_replica'), `maildir:${s.dir}/replica/EXAMPLE.ORG/n/ann.lee`);
  assert.equal(bob!.get('noreplicate'), 'yes');
  assert.equal(bob!.get('mail'), `maildir:${s.dir}/home/bob/Mail`);
  assert.equal(jorg!.get('mail'), `maildir:${s.dir}/mail//jörg`);

  // Dovecot reading the same file: every userdb field is the same (doveadm shows templates unexpanded).
  await grantDovecotAccess(s.dir);
  const d = await startDovecot({ imap: false, users: ['oracle'], extraConfig: `userdb {\n  driver = passwd-file\n  args = ${s.users}\n}\n` });
  try {
    // (Not jörg: Dovecot's default auth_username_chars refuses the name before any userdb sees it.)
    for (const [name, ours] of [['alice', alice!], ['ann.lee@example.org', ann!], ['bob', bob!]] as const) {
      const theirs = new Map((await d.doveadm(['user', name])).trim().split('\n').slice(1).map((l) => l.split('\t') as [string, string]));
      for (const f of ['uid', 'gid', 'home', 'quota_rule']) assert.equal(ours.get(f)?.split(' ')[0], theirs.get(f), `${name}: ${f} as doveadm user shows it`);
      assert.equal(ours.get('noreplicate'), theirs.has('noreplicate') ? 'yes' : 'no', `${name}: noreplicate`);
      if (theirs.has('mail_replica')) assert.equal(ours.get('mail_replica'), theirs.get('mail_replica'));
    }
  } finally {
    await d.stop();
  }
});

test('user: masks, -F with destinations, unknown users (67) named while the others are still shown; --json is one object a line', () => {
  const s = standardSite();
  const r = cli([...s.args, ...settingsArgs(s.dir), 'user', '-u', 'a*', '-u', 'ghost']);
  assert.equal(r.code, 67);
  assert.deepEqual(blocks(r.stdout).map((b) => b.get('user')), ['ghost', 'alice', 'ann.lee@example.org']);
  assert.match(r.stderr, /^mailferry: user ghost: no such user in passwd-file /m);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);

  const none = cli([...s.args, 'user', 'z*']);
  assert.equal(none.code, 67);
  assert.match(none.stderr, /no user of passwd-file .* matches 'z\*'/);

  const list = join(s.dir, 'list');
  writeFileSync(list, `# to move\n\nbob\tmaildir:${s.dir}/moved/%u\nghost\nalice\nbob\n`);
  const f = cli([...s.args, ...settingsArgs(s.dir), 'user', '-F', list, '--json']);
  assert.equal(f.code, 67, f.stderr);
  const objects = f.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(objects.map((o) => o.user), ['bob', 'ghost', 'alice']);
  assert.equal(objects[0]!.destination, `maildir:${s.dir}/moved/bob`);
  assert.equal(objects[0]!.noreplicate, true);
  assert.equal(objects[1]!.exitCode, 67);
  assert.match(String(objects[1]!.error), /no such user/);
  assert.deepEqual(objects[2], {
    user: 'alice', uid: UID, ...(objects[2]!.uid_name ? { uid_name: objects[2]!.uid_name } : {}), gid: GID, ...(objects[2]!.gid_name ? { gid_name: objects[2]!.gid_name } : {}),
    home: `${s.dir}/home/alice`, mail: `maildir:${s.dir}/home/alice/Maildir`, mail_replica: `maildir:${s.dir}/replica/alice`, noreplicate: false, extra: { quota_rule: '*:storage=1G' },
  });
  if (root) assert.equal(objects[2]!.uid_name, 'nobody');
  assert.match(f.stderr, /user bob is listed again/);

  const all = cli([...s.args, ...settingsArgs(s.dir), 'user', '-A', '--json']);
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(all.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { user: string }).user), ['alice', 'ann.lee@example.org', 'bob', 'jörg']);

  const both = cli([...s.args, 'user', '-A', 'alice']);
  assert.equal(both.code, 64);
  const nothing = cli([...s.args, 'user']);
  assert.equal(nothing.code, 64);
  assert.match(nothing.stderr, /name the users/);
});

test('user: a template a user name would steer outside its root is that user\'s error, with the status its run gives (65)', () => {
  const s = site((dir) => [
    line('good', `${dir}/home/good`),
    line('..', `${dir}/home/dots`),
    line('up', `${dir}/home/../../etc`, 'userdb_mail=maildir:~/Maildir'),
    line('evil', `${dir}/home/evil`, 'userdb_mail_replica=maildir:/replica/%{nosuch}'),
  ]);
  const args = [...s.args, '-o', `mail_location=maildir:${s.dir}/mail/%u`, '-o', `mail_replica=maildir:${s.dir}/replica/%u`];
  const r = cli([...args, 'user', '-A']);
  assert.equal(r.code, 65, r.stderr);
  const [good, dots, up, evil] = blocks(r.stdout);
  assert.equal(good!.get('mail'), `maildir:${s.dir}/mail/good`);
  assert.equal(good!.has('error'), false);
  assert.equal(dots!.has('mail'), false);
  assert.match(dots!.get('error')!, /%\{user\} is '\.\.'/);
  assert.match(up!.get('error')!, /home '.*' is not an absolute path without '\.\.'/);
  assert.match(evil!.get('error')!, /unknown variable %\{nosuch\}/);
  assert.match(r.stderr, /^mailferry: user \.\.: %\{user\} is '\.\.'/m);
  assert.match(r.stderr, /^mailferry: user up: home /m);
  // Each alone gives what a backup of that user gives.
  for (const u of ['..', 'up', 'evil']) {
    const shown = cli([...args, 'user', u]);
    const run = cli([...args, 'backup', '-u', u, '-d']);
    assert.notEqual(shown.code, 0);
    assert.equal(shown.code, run.code, `${u}: ${shown.stderr} / ${run.stderr}`);
  }
});

test('user: a static userdb shows any name with its templates expanded and cannot list (78); no userdb is 78 with the fix; -F runs without one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-userinfo-'));
  const st = ['-c', '', '-o', `userdb=static:uid=${UID} gid=${GID} home=${dir}/srv/%d/%n`, '-o', 'mail_location=maildir:~/Maildir'];
  const r = cli([...st, 'user', 'carol@example.com']);
  assert.equal(r.code, 0, r.stderr);
  const [carol] = blocks(r.stdout);
  assert.equal(carol!.get('home'), `${dir}/srv/example.com/carol`);
  assert.equal(carol!.get('mail'), `maildir:${dir}/srv/example.com/carol/Maildir`);
  assert.equal(carol!.has('mail_replica'), false);
  // A name with a line break and a tab stays on its own lines, escaped.
  const hostile = cli([...st, 'user', 'ev\til\nuser\troot']);
  assert.equal(hostile.code, 0, hostile.stderr);
  const [evil] = blocks(hostile.stdout);
  assert.equal(evil!.get('user'), 'ev\\til\\nuser\\troot');
  assert.equal(blocks(hostile.stdout).length, 1);
  const all = cli([...st, 'user', '-A']);
  assert.equal(all.code, 78);
  assert.match(all.stderr, /static userdb cannot list its users/);

  const none = cli(['-c', '', 'user', 'carol']);
  assert.equal(none.code, 78);
  assert.match(none.stderr, /no userdb is configured .*-o userdb=passwd-file:FILE/);
  const list = join(dir, 'list');
  writeFileSync(list, 'carol\n');
  const names = cli(['-c', '', '-o', `mail_location=maildir:${dir}/mail/%u`, 'user', '-F', list]);
  assert.equal(names.code, 0, names.stderr);
  assert.equal(blocks(names.stdout)[0]!.get('mail'), `maildir:${dir}/mail/carol`);

  const missing = cli(['-c', '', '-o', `userdb=passwd-file:${dir}/nope`, 'user', '-A']);
  assert.equal(missing.code, 78);
  assert.match(missing.stderr, /nope: no such file/);
});

test('user: thousands of users come out in userdb order, one block each', () => {
  const n = 3000;
  const s = site((dir) => Array.from({ length: n }, (_, i) => line(`u${String(i).padStart(5, '0')}`, `${dir}/home/u${i}`, 'userdb_mail=maildir:~/Maildir')));
  const r = cli([...s.args, 'user', '-A', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const users = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { user: string; mail: string }));
  assert.equal(users.length, n);
  assert.deepEqual(users.map((u) => u.user), Array.from({ length: n }, (_, i) => `u${String(i).padStart(5, '0')}`));
  assert.equal(users[n - 1]!.mail, `maildir:${s.dir}/home/u${n - 1}/Maildir`);
});

test('user: passwords in locations and secret-looking fields are never printed', () => {
  const s = site((dir) => [line('alice', `${dir}/home/alice`, 'userdb_mail_replica=imaps://alice:Rep1icaPw@replica.example.org/ userdb_mail_crypt_private_password=KeyPw userdb_quota=maildir')]);
  for (const json of [[], ['--json']]) {
    const r = cli([...s.args, '-o', `mail_location=maildir:${s.dir}/mail/%u`, 'user', 'alice', ...json]);
    assert.equal(r.code, 0, r.stderr);
    for (const secret of ['Rep1icaPw', 'KeyPw']) assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), `${secret} printed: ${r.stdout}`);
    assert.ok(r.stdout.includes(`imaps://alice:${MASK}@replica.example.org/`));
    assert.ok(r.stdout.includes('maildir'), 'harmless fields are shown');
  }
});

function configSite(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-config-'));
  const file = join(dir, 'mailferry.toml');
  writeFileSync(file, text);
  return { dir, file };
}

const SECRET_CONFIG = `# the site's configuration
mail_location = "maildir:~/Maildir"
mail_replica = "imaps://%u:R3plicaPw@replica.example.org/"
lock_timeout = 30
mail_uid = 1000
first_valid_uid = 100

[userdb]
driver = "sql"
connect = "postgresql://mail:DbPw%40x@db.example.org:5432/mail?sslmode=require&sslpassword=SslPw"
user_query = "SELECT home, uid, gid FROM users WHERE userid = '%u'"
`;

/** Text without its comment lines, and what it means to a TOML reader. */
const body = (text: string) => text.split('\n').filter((l) => !l.startsWith('#')).join('\n');

test('config: what differs from the defaults, as TOML that reads back the same; the file and -o named; every password masked', () => {
  const c = configSite(SECRET_CONFIG);
  const r = cli(['-c', c.file, '-o', 'lock_timeout=5', 'config']);
  assert.equal(r.code, 0, r.stderr);
  for (const secret of ['R3plicaPw', 'DbPw', 'SslPw']) assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), `${secret} printed:\n${r.stdout}`);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], `# mailferry configuration: ${c.file}`);
  assert.deepEqual(lines.slice(1, 3), ['# -o mail_fsync=never', '# -o lock_timeout=5']);
  const doc = parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(JSON.parse(JSON.stringify(doc)), {
    mail_location: 'maildir:~/Maildir',
    mail_replica: `imaps://%u:${MASK}@replica.example.org/`,
    mail_fsync: 'never',
    lock_timeout: 5,
    first_valid_uid: 100,
    mail_uid: '1000',
    userdb: {
      driver: 'sql',
      connect: `postgresql://mail:${MASK}@db.example.org:5432/mail?sslmode=require&sslpassword=${MASK}`,
      user_query: "SELECT home, uid, gid FROM users WHERE userid = '%u'",
    },
  });

  // The round trip: read back, it prints the same settings.
  const printed = join(c.dir, 'printed.toml');
  writeFileSync(printed, r.stdout);
  const again = cli(['-c', printed, 'config']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.split('\n')[0], `# mailferry configuration: ${printed}`);
  assert.equal(body(again.stdout), body(r.stdout));

  // --all: every setting, defaults included, and it reads back to the same too.
  const all = cli(['-c', c.file, 'config', '--all']);
  assert.equal(all.code, 0, all.stderr);
  const allDoc = parse(all.stdout) as Record<string, unknown>;
  for (const key of Object.keys(SETTINGS)) assert.ok(key in allDoc || all.stdout.includes(`# ${key} is not set`), `${key} in --all`);
  assert.equal(allDoc.last_valid_uid, DEFAULT_SETTINGS.last_valid_uid);
  assert.equal(allDoc.lock_timeout, 30);
  writeFileSync(printed, all.stdout);
  const allAgain = cli(['-c', printed, 'config', '--all']);
  assert.equal(body(allAgain.stdout), body(all.stdout));
  // What --all printed, read back, differs from the defaults exactly where the file does.
  assert.equal(body(cli(['-c', printed, 'config']).stdout), body(cli(['-c', c.file, 'config']).stdout));

  // SETTING arguments: those alone, default or not.
  const some = cli(['-c', c.file, 'config', 'lock_timeout', 'mail_gid', 'userdb']);
  assert.equal(some.code, 0, some.stderr);
  assert.equal(body(some.stdout).trim(), `lock_timeout = 30\n[userdb]\ndriver = "sql"\nconnect = "postgresql://mail:${MASK}@db.example.org:5432/mail?sslmode=require&sslpassword=${MASK}"\nuser_query = "SELECT home, uid, gid FROM users WHERE userid = '%u'"`.replace('[userdb]', '\n[userdb]'));
  assert.match(some.stdout, /^# mail_gid is not set$/m);
});

test('config: other connect strings, -o overrides and hostile values keep their passwords and their lines to themselves', () => {
  const keywords = configSite(`[userdb]\ndriver = "sql"\nconnect = "host=db user=mail password='s3 cr\\\\'et' dbname=mail"\nuser_query = "SELECT 1"\n`);
  const k = cli(['-c', keywords.file, 'config']);
  assert.equal(k.code, 0, k.stderr);
  assert.match(k.stdout, new RegExp(`connect = "host=db user=mail password=${MASK.replace(/\*/g, '\\*')} dbname=mail"`));
  assert.ok(!/s3|cr/.test(body(k.stdout)), k.stdout);
  const opaque = configSite('[userdb]\ndriver = "sql"\nconnect = "db.example.org mail Sup3rSecret"\nuser_query = "SELECT 1"\n');
  const o = cli(['-c', opaque.file, 'config']);
  assert.ok(!o.stdout.includes('Sup3rSecret'));
  assert.match(o.stdout, /connect = "\*{8}"/);

  // An -o value is named in a comment: masked, and a line break in it cannot add a setting.
  const h = cli(['-c', '', '-o', 'mail_replica=imap://u:OvPw@h/', '-o', 'mail_location=maildir:/x\nlock_timeout = 1', 'config']);
  assert.equal(h.code, 0, h.stderr);
  assert.ok(!h.stdout.includes('OvPw'));
  assert.match(h.stdout, /^# mailferry configuration: no file read/);
  assert.match(h.stdout, /^# -o mail_replica=imap:\/\/u:\*{8}@h\/$/m);
  const doc = parse(h.stdout) as Record<string, unknown>;
  assert.equal(doc.mail_location, 'maildir:/x\nlock_timeout = 1');
  assert.equal(doc.lock_timeout, undefined);
});

test('config: file typos are 78 with file and line; a misspelt SETTING argument or -n with --all is 64; --help lists every setting', () => {
  const c = configSite('mail_location = "maildir:~/Maildir"\n\nlock_timout = 5\n');
  const r = cli(['-c', c.file, 'config']);
  assert.equal(r.code, 78);
  assert.match(r.stderr, new RegExp(`${c.file} line 3: unknown setting 'lock_timout'`));
  assert.equal(r.stdout, '');
  const bad = configSite('mail_fsync = "sometimes"\n');
  assert.equal(cli(['-c', bad.file, 'config']).code, 78);
  const toml = configSite('mail_location = "unterminated\n');
  const t = cli(['-c', toml.file, 'config']);
  assert.equal(t.code, 78);
  assert.match(t.stderr, new RegExp(`${toml.file} line 1: not valid TOML`));
  const table = configSite('[userdb]\ndriver = "sql"\nconect = "x"\n');
  const tt = cli(['-c', table.file, 'config']);
  assert.equal(tt.code, 78);
  assert.match(tt.stderr, /line 3: unknown setting 'userdb.conect'/);

  const typo = cli(['-c', '', 'config', 'mail_locaton']);
  assert.equal(typo.code, 64);
  assert.match(typo.stderr, /unknown setting 'mail_locaton' \(known: mail_location,/);
  assert.equal(cli(['-c', '', 'config', '-n', '--all']).code, 64);
  assert.equal(cli(['-c', '', '-o', 'lock_timeout=soon', 'config']).code, 64);

  const help = cli(['config', '--help']);
  assert.equal(help.code, 0);
  for (const [key, spec] of Object.entries(SETTINGS)) assert.ok(help.stdout.includes(`${key}`) && help.stdout.includes(spec.describe), `${key} in config --help`);
});

test('masking: a setting marked secret is printed masked, and masking any password leaves none and is idempotent', () => {
  const spec = SETTINGS.oauth2_token_cmd!;
  const saved = spec.secret;
  spec.secret = true;
  try {
    const settings = { ...DEFAULT_SETTINGS, oauth2_token_cmd: 'get-token --for mail' };
    const text = renderConfig(settings, { mode: 'changed', overrides: ['oauth2_token_cmd=get-token --for mail'] });
    assert.ok(!text.includes('get-token'), text);
    assert.equal((parse(text) as Record<string, unknown>).oauth2_token_cmd, MASK);
  } finally {
    spec.secret = saved;
  }
  // Passwords of any characters, marked so that any piece of one left behind is seen.
  const password = fc.string({ minLength: 1, maxLength: 16, unit: fc.constantFrom(...'aZ9 ;&\'"\\@:/?#=%*'.split('')) }).map((p) => `Qx${p}`);
  fc.assert(
    fc.property(password, fc.constantFrom('postgresql', 'postgres'), (pw, scheme) => {
      const forms = [
        `${scheme}://mail:${encodeURIComponent(pw)}@db.example.org/mail`,
        `${scheme}://mail@db.example.org/mail?sslmode=require&password=${encodeURIComponent(pw)}`,
        `host=db.example.org user=mail password='${pw.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}' dbname=mail`,
        `host=db.example.org user=mail password='${pw.replace(/'/g, "''")}' dbname=mail`,
        `${scheme}://mail:${pw}@db.example.org/mail`,
        `dbname=mail password=${pw}`,
      ];
      for (const text of forms) {
        const masked = maskConnect(text);
        assert.ok(!masked.includes('Qx'), `${text} -> ${masked}`);
        assert.equal(maskConnect(masked), masked, 'masking a masked string changes nothing');
      }
      const uri = `${scheme}://mail:${encodeURIComponent(pw)}@db.example.org/mail`;
      assert.equal(maskPasswords(uri), `${scheme}://mail:${MASK}@db.example.org/mail`, 'the rest of a URI is kept');
    }),
    { numRuns: 300 },
  );
});
