/**
 * The sql userdb against a real PostgreSQL (started on loopback by test/support/postgres.ts)
 * and a real SQLite file: Dovecot-style queries with quoted %-variables, hostile user names
 * that must stay values, NULL columns, noreplicate, iteration through a cursor, and every
 * failure with its exit status: unreachable 75, bad query 78, bad value 65, no privilege 77.
 * Then the built CLI: backup -A -d for users from PostgreSQL, and its exit statuses.
 */
import { strict as assert } from 'node:assert';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { MailferryError } from '../../src/model/errors.js';
import { openSqlUserDb, type SqlUserDbOptions } from '../../src/config/userdb/sql-userdb.js';
import { isUnusableUser, type UserDb, type UserRecord } from '../../src/config/userdb/userdb.js';
import { cli, deliver, subjectsIn } from '../cli/cli-child.js';
import { startPostgres, type Postgres } from '../support/postgres.js';

const root = process.getuid?.() === 0;
const UID = root ? 65534 : process.getuid!();
const GID = root ? 65534 : process.getgid!();
const SECRET = 'Sekr1t';
const ROLE_PASSWORD = `dove'cot \\${SECRET}`;

let pgsql: Postgres;
let work: string;
/** The `dovecot` role's URI: what a mail server's userdb connects as (SELECT only). */
let dovecotUri: string;
let sqliteFile: string;
const sites: string[] = [];

/** Names that break SQL pasted together by hand; each must find exactly its own row. */
const HOSTILE = [
  "o'brien",
  "x'; DROP TABLE users; --",
  "quote''twice",
  'back\\slash',
  "back\\'slash",
  'dq"name',
  'ünïcødé',
  '日本語',
  'emoji😀',
  '%u',
  '%%',
  '$1',
  '?',
  'semi;colon',
  '--',
  '/*',
  '$$',
  "E'x'",
  'tab\tname',
  'new\nline',
  ' spaced ',
];

const TABLE = `CREATE TABLE users (
  userid text NOT NULL, domain text NOT NULL, home text, uid integer, gid integer, mail text,
  mail_replica text, noreplicate %BOOL%, quota_rule text, PRIMARY KEY (userid, domain))`;

const QUERY = "SELECT home, uid, gid, mail, mail_replica AS userdb_mail_replica, noreplicate, quota_rule FROM users WHERE userid = '%n' AND domain = '%d'";
const ITERATE = 'SELECT userid AS username, domain FROM users ORDER BY userid';

/** Rows both databases hold: [userid, domain, home, uid, gid, mail, mail_replica, noreplicate, quota_rule]. */
function baseRows(bool: (b: boolean | null) => unknown): unknown[][] {
  const rows: unknown[][] = [
    ['alice', 'example.org', '/srv/mail/alice', 1001, 1000, 'maildir:~/Maildir', 'maildir:/replica/%u', bool(false), '*:storage=1G'],
    ['bob', 'example.org', '/srv/mail/bob', 1002, 1000, null, null, bool(true), null],
    ['nulls', 'example.org', null, null, null, null, null, null, null],
    ['alice', 'other.example', '/srv/other/alice', 2001, 2000, null, null, null, null],
  ];
  HOSTILE.forEach((name, i) => rows.push([name, 'example.org', `/srv/hostile/${i}`, 5000 + i, 5000, null, null, null, null]));
  return rows;
}

async function open(overrides: Partial<SqlUserDbOptions> & { connect: string }): Promise<UserDb> {
  return openSqlUserDb({ user_query: QUERY, iterate_query: ITERATE, source: '[userdb]', ...overrides });
}

/** Runs `fn` with a userdb and closes it whatever happens. */
async function withDb<T>(options: Partial<SqlUserDbOptions> & { connect: string }, fn: (db: UserDb) => Promise<T>): Promise<T> {
  const db = await open(options);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function rejectsWith(p: Promise<unknown>, exitCode: number, message: RegExp): Promise<MailferryError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof MailferryError, `expected a MailferryError, got ${String(caught)}`);
  assert.equal(caught.exitCode, exitCode, caught.message);
  assert.match(caught.message, message);
  return caught;
}

async function all(db: UserDb): Promise<UserRecord[]> {
  const out: UserRecord[] = [];
  for await (const r of db.iterate()) {
    // An unusable user is thrown as iteration used to throw it: the tests below ask for its error.
    if (isUnusableUser(r)) throw r.error;
    out.push(r);
  }
  return out;
}

before(async () => {
  pgsql = await startPostgres();
  work = mkdtempSync(join(tmpdir(), 'mailferry-sql-'));
  await pgsql.query(TABLE.replace('%BOOL%', 'boolean'));
  for (const row of baseRows((b) => b)) await pgsql.query('INSERT INTO users VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', row);
  await pgsql.query(`CREATE ROLE dovecot LOGIN PASSWORD '${ROLE_PASSWORD.replace(/'/g, "''")}'`);
  await pgsql.query('GRANT SELECT ON users TO dovecot');
  await pgsql.query("CREATE ROLE outsider LOGIN PASSWORD 'outsider'");
  dovecotUri = pgsql.uriFor('postgres', 'dovecot', ROLE_PASSWORD);

  sqliteFile = join(work, 'users.db');
  const lite = new Database(sqliteFile);
  lite.exec(TABLE.replace('%BOOL%', 'integer'));
  const insert = lite.prepare('INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  for (const row of baseRows((b) => (b === null ? null : b ? 1 : 0))) insert.run(...row);
  lite.close();
});

after(async () => {
  await pgsql?.stop();
  for (const d of [work, ...sites]) if (d) rmSync(d, { recursive: true, force: true });
});

for (const kind of ['PostgreSQL', 'SQLite'] as const) {
  describe(`sql userdb on ${kind}`, () => {
    const connect = () => (kind === 'PostgreSQL' ? dovecotUri : `sqlite:${sqliteFile}`);

    test('lookup maps Dovecot field names; NULL is not set; noreplicate as Dovecot reads it; unknown is undefined', async () => {
      await withDb({ connect: connect() }, async (db) => {
        assert.deepEqual(await db.lookup('alice@example.org'), {
          user: 'alice@example.org',
          home: '/srv/mail/alice',
          uid: 1001,
          gid: 1000,
          mail: 'maildir:~/Maildir',
          mailReplica: 'maildir:/replica/%u',
          noReplicate: false,
          extra: { quota_rule: '*:storage=1G' },
        });
        const bob = await db.lookup('bob@example.org');
        assert.equal(bob?.noReplicate, true, 'a true boolean column (t, 1) is noreplicate');
        assert.equal(bob?.mail, undefined);
        assert.deepEqual(await db.lookup('nulls@example.org'), { user: 'nulls@example.org', extra: {} }, 'every NULL column is a field not set');
        assert.equal((await db.lookup('alice@other.example'))?.home, '/srv/other/alice', '%n and %d pick the domain too');
        assert.equal(await db.lookup('carol@example.org'), undefined);
        assert.equal(await db.lookup('alice'), undefined, 'no domain: %d is empty');
      });
    });

    test('hostile user names are values: each finds its own row, injections find nothing, the table survives', async () => {
      await withDb({ connect: connect() }, async (db) => {
        for (const [i, name] of HOSTILE.entries()) {
          const r = await db.lookup(`${name}@example.org`);
          assert.equal(r?.home, `/srv/hostile/${i}`, JSON.stringify(name));
          assert.equal(r?.user, `${name}@example.org`);
        }
        for (const attack of ["' OR '1'='1", "x' OR 'x'='x", "alice' --", "alice'/*", "nobody' UNION SELECT '/etc', 0, 0, '', '', '', '' --"]) {
          assert.equal(await db.lookup(`${attack}@example.org`), undefined, attack);
        }
        assert.equal((await all(db)).length, baseRows(() => null).length, 'every row is still there');
      });
    });

    test('query shapes Dovecot users write: quoted %u, text around variables, modifiers, a user column, %% and comments', async () => {
      const shapes: Array<[string, string]> = [
        ["SELECT home FROM users WHERE userid || '@' || domain = '%u'", "o'brien@example.org"],
        ["SELECT home FROM users WHERE userid || '@' || domain = '%n@%d' -- '%u' in a comment", "o'brien@example.org"],
        ["SELECT home, '%u' AS user FROM users WHERE userid = '%Ln' AND domain = '%d'", "O'BRIEN@example.org"],
        ["SELECT home FROM users WHERE userid = %n AND domain = %d /* unquoted works too */", "o'brien@example.org"],
        ["SELECT home FROM users WHERE home LIKE '/srv/hostile/%%' AND userid = '%n'", "o'brien@example.org"],
        ["SELECT home FROM users WHERE 'o''brien' = '%n' AND userid = '%n' AND domain = '%d'", "o'brien@example.org"],
      ];
      for (const [user_query, user] of shapes) {
        await withDb({ connect: connect(), user_query }, async (db) => {
          assert.equal((await db.lookup(user))?.home, `/srv/hostile/${HOSTILE.indexOf("o'brien")}`, user_query);
        });
      }
    });

    test('random user names never change the query: a member finds its row, a stranger nothing', async () => {
      const table = 'names';
      if (kind === 'PostgreSQL') await pgsql.query(`CREATE TABLE IF NOT EXISTS ${table} (userid text PRIMARY KEY, home text); GRANT SELECT ON ${table} TO dovecot`);
      const lite = kind === 'SQLite' ? new Database(sqliteFile) : undefined;
      lite?.exec(`CREATE TABLE IF NOT EXISTS ${table} (userid text PRIMARY KEY, home text)`);
      const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }).filter((s) => !s.includes('\0'));
      try {
        await withDb({ connect: connect(), user_query: `SELECT home FROM ${table} WHERE userid = '%u'` }, async (db) => {
          await fc.assert(
            fc.asyncProperty(fc.uniqueArray(name, { minLength: 1, maxLength: 6 }), name, async (members, stranger) => {
              fc.pre(!members.includes(stranger));
              if (lite) {
                lite.exec(`DELETE FROM ${table}`);
                const ins = lite.prepare(`INSERT INTO ${table} VALUES (?, ?)`);
                members.forEach((m, i) => ins.run(m, `/h/${i}`));
              } else {
                await pgsql.query(`DELETE FROM ${table}`);
                for (const [i, m] of members.entries()) await pgsql.query(`INSERT INTO ${table} VALUES ($1, $2)`, [m, `/h/${i}`]);
              }
              for (const [i, m] of members.entries()) assert.equal((await db.lookup(m))?.home, `/h/${i}`);
              assert.equal(await db.lookup(stranger), undefined);
            }),
            { numRuns: 40 },
          );
        });
      } finally {
        lite?.close();
      }
    });

    test('iterate lists users from user or username+domain columns, each looked up with user_query', async () => {
      await withDb({ connect: connect() }, async (db) => {
        const users = await all(db);
        assert.equal(users.length, baseRows(() => null).length);
        const alice = users.find((u) => u.user === 'alice@example.org');
        assert.equal(alice?.home, '/srv/mail/alice');
        assert.equal(users.find((u) => u.user === 'alice@other.example')?.uid, 2001);
        assert.ok(users.some((u) => u.user === "x'; DROP TABLE users; --@example.org"));
      });
      await withDb({ connect: connect(), iterate_query: "SELECT userid || '@' || domain AS user FROM users WHERE domain = 'other.example'" }, async (db) => {
        assert.deepEqual((await all(db)).map((u) => u.user), ['alice@other.example']);
      });
      // Without a domain column the user is the bare name, which this user_query does not find.
      const warnings: string[] = [];
      await withDb({ connect: connect(), iterate_query: "SELECT userid AS username FROM users WHERE userid = 'alice'", warn: (m) => warnings.push(m) }, async (db) => {
        assert.deepEqual(await all(db), []);
      });
      assert.equal(warnings.length, 2, warnings.join('\n'));
      assert.match(warnings[0]!, /^\[userdb\] iterate_query: user alice is listed, but user_query does not find it; skipped$/);
      warnings.length = 0;
      await withDb({ connect: connect(), iterate_query: "SELECT NULL AS user UNION ALL SELECT 'bob@example.org'", warn: (m) => warnings.push(m) }, async (db) => {
        assert.deepEqual((await all(db)).map((u) => u.user), ['bob@example.org']);
      });
      assert.match(warnings.join('\n'), /iterate_query: row 1 has no user name \(NULL or empty\); skipped/);
    });

    test('iterating 5,000 users streams them, looking each up while the listing is still open', async () => {
      const bulkTable = 'bulk';
      const n = 5000;
      if (kind === 'PostgreSQL') {
        await pgsql.query(`CREATE TABLE ${bulkTable} (userid text PRIMARY KEY, home text, uid integer)`);
        await pgsql.query(`INSERT INTO ${bulkTable} SELECT 'user' || i, '/srv/bulk/' || i, 10000 + i FROM generate_series(1, ${n}) i`);
        await pgsql.query(`GRANT SELECT ON ${bulkTable} TO dovecot`);
      } else {
        const lite = new Database(sqliteFile);
        lite.exec(`CREATE TABLE ${bulkTable} (userid text PRIMARY KEY, home text, uid integer)`);
        const ins = lite.prepare(`INSERT INTO ${bulkTable} VALUES (?, ?, ?)`);
        lite.transaction(() => {
          for (let i = 1; i <= n; i++) ins.run(`user${i}`, `/srv/bulk/${i}`, 10000 + i);
        })();
        lite.close();
      }
      await withDb({ connect: connect(), user_query: `SELECT home, uid FROM ${bulkTable} WHERE userid = '%u'`, iterate_query: `SELECT userid AS user FROM ${bulkTable}` }, async (db) => {
        const seen = new Set<string>();
        for await (const r of db.iterate()) {
          if (isUnusableUser(r)) throw r.error;
          const i = Number(r.user.slice('user'.length));
          assert.equal(r.home, `/srv/bulk/${i}`);
          assert.equal(r.uid, 10000 + i);
          seen.add(r.user);
          if (seen.size === 100 && kind === 'PostgreSQL') {
            // The listing's session is still running its query: rows come from a cursor.
            const sessions = await pgsql.query("SELECT state, query FROM pg_stat_activity WHERE usename = 'dovecot' AND application_name = 'mailferry'");
            assert.ok(sessions.rows.some((s) => s.state === 'active' && /FROM bulk/.test(s.query)), JSON.stringify(sessions.rows));
          }
        }
        assert.equal(seen.size, n);
      });
    });

    test('bad queries are configuration errors (78) naming the setting; bad values are the user\'s (65)', async () => {
      await withDb({ connect: connect(), user_query: "SELECT homedir FROM users WHERE userid = '%n'" }, async (db) => {
        await rejectsWith(db.lookup('alice@example.org'), 78, /^\[userdb\] user_query: .*homedir/);
      });
      await withDb({ connect: connect(), user_query: "SELEC home FROM users WHERE userid = '%n'" }, async (db) => {
        await rejectsWith(db.lookup('alice@example.org'), 78, /\[userdb\] user_query: .*syntax error/);
      });
      await withDb({ connect: connect(), iterate_query: 'SELECT nosuch FROM users' }, async (db) => {
        await rejectsWith(all(db), 78, /\[userdb\] iterate_query: .*nosuch/);
      });
      await withDb({ connect: connect(), iterate_query: 'SELECT home FROM users' }, async (db) => {
        await rejectsWith(all(db), 78, /iterate_query: its rows have no user column/);
      });
      await withDb({ connect: connect(), iterate_query: undefined }, async (db) => {
        await rejectsWith(all(db), 78, /iterate_query is not set/);
        assert.equal((await db.lookup('bob@example.org'))?.uid, 1002, 'lookups work without it');
      });
      await withDb({ connect: connect(), user_query: "SELECT 'not-a-uid' AS uid FROM users WHERE userid = '%n' AND domain = '%d'" }, async (db) => {
        await rejectsWith(db.lookup("o'brien@example.org"), 65, /user o'brien@example.org: uid 'not-a-uid'/);
      });
      await withDb({ connect: connect(), user_query: "SELECT home FROM users WHERE userid = '%n'" }, async (db) => {
        await rejectsWith(db.lookup('alice@example.org'), 65, /user alice@example.org: 2 different rows/);
        // Listed, the ambiguous user fails alone: the users after it are still listed.
        const listed: string[] = [];
        for await (const r of db.iterate()) listed.push(isUnusableUser(r) ? `${r.user}: ${r.error.exitCode}` : r.user);
        assert.ok(listed.some((l) => /^alice@example\.org: 65$/.test(l)), listed.join(', '));
        assert.ok(listed.filter((l) => !l.includes(':')).length > 0, `others still listed: ${listed.join(', ')}`);
      });
      for (const [user_query, message] of [
        ['SELECT home FROM users WHERE userid = %x', /user_query 'SELECT .*': unknown variable %x/],
        ['SELECT home FROM users_%d', /user_query: a variable that is part of a name/],
        ['SELECT "%u" FROM users', /user_query: a variable inside a quoted name/],
        ["SELECT home FROM users WHERE userid = '%u", /user_query: unterminated string/],
      ] as const) {
        await rejectsWith(open({ connect: connect(), user_query }), 78, message);
      }
      await rejectsWith(open({ connect: connect(), iterate_query: "SELECT userid AS user FROM users WHERE userid = '%u'" }), 78, /iterate_query 'SELECT .*': unknown variable %u/);
    });
  });
}

describe('sql userdb on PostgreSQL: connections', () => {
  test('the description and every message mask the password', async () => {
    await withDb({ connect: dovecotUri }, async (db) => {
      assert.ok(!db.description.includes(SECRET), db.description);
      assert.match(db.description, /^sql postgresql:\/\/dovecot:\*{4}@127\.0\.0\.1:\d+\/postgres$/);
    });
    const kv = `host=127.0.0.1 port=${pgsql.port} dbname=postgres user=dovecot password='${ROLE_PASSWORD.replace(/[\\']/g, '\\$&')}'`;
    await withDb({ connect: kv }, async (db) => {
      assert.equal(db.description, `sql host=127.0.0.1 port=${pgsql.port} dbname=postgres user=dovecot password=****`);
      assert.equal((await db.lookup('alice@example.org'))?.uid, 1001, "libpq's key=value form connects too");
    });
    const wrong = await rejectsWith(open({ connect: pgsql.uriFor('postgres', 'dovecot', 'wrong-secret') }), 78, /PostgreSQL at 127\.0\.0\.1:\d+, database postgres: password authentication failed for user "dovecot"/);
    assert.ok(!wrong.message.includes('wrong-secret'));
    await rejectsWith(open({ connect: pgsql.uriFor('no_such_db', 'dovecot', ROLE_PASSWORD) }), 78, /database no_such_db: .*does not exist/);
  });

  test('an unreachable server is a temporary failure (75) naming host and database, never the password', async () => {
    const closed = await closedPort();
    const err = await rejectsWith(open({ connect: `postgresql://dovecot:hunter2@127.0.0.1:${closed}/maildb` }), 75, new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${closed}, database maildb: cannot connect: connection refused`));
    assert.ok(!err.message.includes('hunter2'));

    // A server that accepts and never answers: the connect timeout ends the wait.
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const started = Date.now();
    try {
      const slow = await rejectsWith(open({ connect: `host=127.0.0.1 port=${port} dbname=maildb user=dovecot password=hunter2 connect_timeout=2` }), 75, /no answer within 2 s \(connect_timeout\)/);
      assert.ok(!slow.message.includes('hunter2'));
      assert.ok(Date.now() - started < 8000, `gave up after ${Date.now() - started} ms`);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  test('a role without SELECT is a permission error (77); user_query cannot write (read-only session)', async () => {
    await withDb({ connect: pgsql.uriFor('postgres', 'outsider', 'outsider') }, async (db) => {
      await rejectsWith(db.lookup('alice@example.org'), 77, /\[userdb\] user_query: permission denied for table users/);
    });
    const writing = "WITH gone AS (DELETE FROM users WHERE userid = '%n' RETURNING home) SELECT home FROM gone";
    await withDb({ connect: pgsql.uri, user_query: writing }, async (db) => {
      await rejectsWith(db.lookup('bob@example.org'), 78, /user_query: cannot execute \w+ in a read-only transaction/);
    });
    assert.equal((await pgsql.query("SELECT count(*)::int AS n FROM users WHERE userid = 'bob'")).rows[0].n, 1);
  });

  test('a lookup session the server ended is connected again on the next lookup', async () => {
    await withDb({ connect: dovecotUri }, async (db) => {
      assert.equal((await db.lookup('alice@example.org'))?.uid, 1001);
      const ended = await pgsql.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'dovecot' AND application_name = 'mailferry'");
      assert.equal(ended.rowCount, 1);
      await sleep(200);
      assert.equal((await db.lookup('bob@example.org'))?.uid, 1002);
    });
  });
});

describe('sql userdb on SQLite: files', () => {
  test('a missing file or one that is no database is a configuration error; a write is refused', async () => {
    await rejectsWith(open({ connect: `sqlite:${join(work, 'nope.db')}` }), 78, /SQLite .*nope\.db: no such file/);
    const junk = join(work, 'junk.db');
    writeFileSync(junk, 'this is not a database, just text long enough to have a header of its own....\n'.repeat(20));
    await rejectsWith(open({ connect: junk }), 78, /not an SQLite database/);
    await withDb({ connect: sqliteFile, user_query: "DELETE FROM users WHERE userid = '%n'" }, async (db) => {
      await rejectsWith(db.lookup('bob@example.org'), 78, /user_query: the query returns no rows \(it must be a SELECT\)|readonly/);
    });
    const lite = new Database(sqliteFile, { readonly: true });
    assert.equal((lite.prepare("SELECT count(*) AS n FROM users WHERE userid = 'bob'").get() as { n: number }).n, 1);
    lite.close();
  });
});

function chownTree(path: string): void {
  if (!root) return;
  chownSync(path, UID, GID);
  if (statSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e));
}

/** A free loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe('the CLI with users from PostgreSQL', () => {
  test('backup -A -d copies each user to their replica; noreplicate is skipped; NULL mail falls back to mail_location', async () => {
    // Its own temp dir: each user's run, as root, is nobody, who cannot enter `work`.
    const dir = mkdtempSync(join(tmpdir(), 'mailferry-sql-site-'));
    sites.push(dir);
    const users = ['alice', "o'brien", 'ünïcødé', 'carol', 'dave'];
    await pgsql.query('CREATE TABLE site (userid text, domain text, home text, uid integer, gid integer, mail text, noreplicate boolean)');
    await pgsql.query('GRANT SELECT ON site TO dovecot');
    const subjects = new Map<string, string[]>();
    for (const u of users) {
      const home = join(dir, 'home', u);
      const mailDir = u === 'carol' ? 'Mail' : 'Maildir';
      subjects.set(u, deliver(join(home, mailDir), 3, u.replace(/\W/g, 'x')));
      deliver(join(home, mailDir, '.Work Stuff'), 1, `${u.replace(/\W/g, 'x')}-work`);
      // carol keeps her mail elsewhere (a mail column); the others have none (NULL): mail_location.
      await pgsql.query('INSERT INTO site VALUES ($1, $2, $3, $4, $5, $6, $7)', [u, 'example.org', home, UID, GID, u === 'carol' ? 'maildir:~/Mail' : null, u === 'dave']);
    }
    mkdirSync(join(dir, 'replica'));
    chownTree(dir);
    const conf = join(dir, 'mailferry.toml');
    writeFileSync(
      conf,
      [
        'mail_location = "maildir:~/Maildir"',
        `mail_replica = "maildir:${dir}/replica/%n"`,
        '',
        '[userdb]',
        'driver = "sql"',
        `connect = ${JSON.stringify(`host=127.0.0.1 port=${pgsql.port} dbname=postgres user=dovecot password='${ROLE_PASSWORD.replace(/[\\']/g, '\\$&')}'`)}`,
        `user_query = "SELECT home, uid, gid, mail, noreplicate FROM site WHERE userid = '%n' AND domain = '%d'"`,
        'iterate_query = "SELECT userid AS username, domain FROM site"',
        '',
      ].join('\n'),
    );
    const started = Date.now();
    const r = cli(['-c', conf, 'backup', '-A', '-d', '-j', '2']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    // Nothing of the database (a session, a timer) keeps the process alive once the run is done.
    assert.ok(Date.now() - started < 45_000, `the run took ${Date.now() - started} ms`);
    for (const u of users.filter((x) => x !== 'dave')) {
      const source = join(dir, 'home', u, u === 'carol' ? 'Mail' : 'Maildir');
      assert.deepEqual(subjectsIn(join(dir, 'replica', u)).sort(), subjectsIn(source).sort(), `${u}'s mail in the replica`);
      assert.equal(subjectsIn(join(dir, 'replica', u)).length, 4);
    }
    assert.ok(!readdirSync(join(dir, 'replica')).includes('dave'), 'noreplicate user left alone');
    assert.match(r.stdout, /dave@example\.org: skipped/);
    assert.match(r.stdout, /users: 5 \(4 ok, 0 incomplete, 0 failed, 1 skipped\)/);
    assert.ok(!r.stdout.includes(SECRET) && !r.stderr.includes(SECRET));

    const again = cli(['-c', conf, 'backup', '-u', "o'brien@example.org", '-d', '--json']);
    assert.equal(again.code, 0, again.stderr);
    const lines = again.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.find((l) => l.user === "o'brien@example.org")?.saved, 0, 'nothing new the second time');
  });

  test('through the CLI: an unreachable database exits 75, a bad query 78, -A without iterate_query 78', () => {
    const dir = mkdtempSync(join(work, 'cli-'));
    const config = (connect: string, userQuery: string, iterate?: string) => {
      const file = join(dir, `c${Math.random().toString(36).slice(2)}.toml`);
      writeFileSync(file, ['[userdb]', 'driver = "sql"', `connect = ${JSON.stringify(connect)}`, `user_query = ${JSON.stringify(userQuery)}`, ...(iterate ? [`iterate_query = ${JSON.stringify(iterate)}`] : []), ''].join('\n'));
      return file;
    };
    const dest = `maildir:${dir}/out/%n`;
    const down = cli(['-c', config('postgresql://dovecot:hunter2@127.0.0.1:1/maildb', QUERY), 'backup', '-u', 'alice@example.org', dest]);
    assert.equal(down.code, 75, down.stderr);
    assert.match(down.stderr, /PostgreSQL at 127\.0\.0\.1:1, database maildb: cannot connect: connection refused/);
    assert.ok(!down.stderr.includes('hunter2') && !down.stdout.includes('hunter2'));

    const badQuery = cli(['-c', config(dovecotUri, "SELECT homedir FROM users WHERE userid = '%n'"), 'backup', '-u', 'alice@example.org', dest]);
    assert.equal(badQuery.code, 78, badQuery.stderr);
    assert.match(badQuery.stderr, /\[userdb\] user_query: column "homedir" does not exist/);

    const noIterate = cli(['-c', config(dovecotUri, QUERY), 'backup', '-A', dest]);
    assert.equal(noIterate.code, 78, noIterate.stderr);
    assert.match(noIterate.stderr, /iterate_query is not set/);

    const unknown = cli(['-c', config(`sqlite:${sqliteFile}`, QUERY, ITERATE), 'backup', '-u', "nobody' OR '1'='1@example.org", dest]);
    assert.equal(unknown.code, 67, unknown.stderr);
  });
});

describe('soak (MAILFERRY_SOAK=1)', { skip: process.env.MAILFERRY_SOAK !== '1' }, () => {
  test('iterating 200,000 PostgreSQL users keeps memory flat', async (t) => {
    await pgsql.query('CREATE TABLE soak (userid text PRIMARY KEY, home text)');
    await pgsql.query("INSERT INTO soak SELECT 'user' || i, '/srv/soak/' || i FROM generate_series(1, 200000) i");
    await withDb({ connect: pgsql.uri, user_query: "SELECT home FROM soak WHERE userid = '%u'", iterate_query: 'SELECT userid AS user FROM soak' }, async (db) => {
      let n = 0;
      let baseline = 0;
      let peak = 0;
      for await (const _ of db.iterate()) {
        n++;
        if (n % 10000 === 0) {
          global.gc?.();
          const heap = process.memoryUsage().heapUsed;
          if (n === 10000) baseline = heap;
          peak = Math.max(peak, heap);
        }
      }
      assert.equal(n, 200000);
      t.diagnostic(`heap after 10,000 users ${(baseline / 1048576).toFixed(1)} MB, peak ${(peak / 1048576).toFixed(1)} MB`);
      assert.ok(peak - baseline < 64 * 1024 * 1024, `heap grew ${((peak - baseline) / 1048576).toFixed(1)} MB`);
    });
  });
});
