/**
 * Dovecot's sql userdb, on PostgreSQL or SQLite, configured as dovecot-sql.conf.ext is:
 *
 *   [userdb]
 *   driver = "sql"
 *   connect = "host=db.example.org dbname=mail user=dovecot password=secret"
 *   user_query = "SELECT home, uid, gid, mail FROM users WHERE userid = '%n' AND domain = '%d'"
 *   iterate_query = "SELECT userid AS username, domain FROM users"
 *
 * user_query's columns are userdb fields under Dovecot's names (home, uid, gid, mail,
 * mail_replica, noreplicate, with or without a userdb_ prefix); a NULL column is a field that
 * is not set. Its %-variables are bound as parameters, never pasted into the SQL (sql-query.ts).
 * iterate_query names the users in a `user` column, or `username` and `domain`.
 */
import { MailferryError } from '../../model/errors.js';
import { userVars } from '../template.js';
import { parseConnect } from './sql-connect.js';
import type { SqlConnection, SqlRow } from './sql-connection.js';
import { bindQuery, type SqlDialect } from './sql-query.js';
import type { UnusableUser, UserDb, UserRecord } from './userdb.js';
import { recordFromFields } from './userdb-fields.js';

export interface SqlUserDbOptions {
  connect: string;
  user_query: string;
  iterate_query?: string;
  /** Where the settings come from, for messages: `[userdb]`. */
  source: string;
  /** Where a user iterate_query lists but user_query cannot find is reported. */
  warn?: (message: string) => void;
}

/** The user name of one iterate_query row, as Dovecot reads it; undefined when the row has none. */
export function userOfIterateRow(row: SqlRow, source: string): string | undefined {
  if ('user' in row) return row.user || undefined;
  if ('username' in row) {
    const { username, domain } = row;
    if (!username) return undefined;
    return domain ? `${username}@${domain}` : username;
  }
  throw new MailferryError('config', `${source} iterate_query: its rows have no user column (select the name AS user, or username and domain); columns: ${Object.keys(row).join(', ') || 'none'}`);
}

function sameRow(a: SqlRow, b: SqlRow): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

export class SqlUserDb implements UserDb {
  readonly description: string;
  private readonly warn: (message: string) => void;

  constructor(
    private readonly conn: SqlConnection,
    private readonly options: SqlUserDbOptions,
    masked: string,
  ) {
    this.description = `sql ${masked}`;
    this.warn = options.warn ?? ((m) => process.stderr.write(`mailferry: warning: ${m}\n`));
  }

  private get source(): string {
    return this.options.source;
  }

  async lookup(user: string): Promise<UserRecord | undefined> {
    const what = `${this.source} user_query`;
    const rows = await this.conn.query(
      (castParams) => bindQuery(this.options.user_query, userVars(user), { dialect: this.conn.dialect, what, castParams }),
      { what: 'user_query', user },
    );
    if (rows.length === 0) return undefined;
    // Two different rows would be two different homes or mail locations: picking one could
    // copy someone else's mail. Identical rows (a join that repeats them) are one user.
    if (rows.some((r) => !sameRow(r, rows[0]!))) {
      throw new MailferryError('data', `${what}: user ${user}: ${rows.length} different rows; the query must find one row per user`);
    }
    const fields: Record<string, string> = {};
    for (const [column, value] of Object.entries(rows[0]!)) if (value !== null) fields[column] = value;
    return recordFromFields(user, fields, what);
  }

  /**
   * Each user iterate_query lists, looked up with user_query as Dovecot does (doveadm -A
   * iterates names, then asks the userdb for each): one definition of a user's fields, and
   * iterate_query may stay the plain `SELECT username, domain FROM users` Dovecot needs.
   */
  async *iterate(): AsyncIterable<UserRecord | UnusableUser> {
    const template = this.options.iterate_query;
    if (!template) {
      throw new MailferryError('config', `${this.source}: iterate_query is not set: the sql userdb cannot list its users for -A or a -u mask without it (name users with -u or -F)`);
    }
    const what = `${this.source} iterate_query`;
    const rows = this.conn.stream((castParams) => bindQuery(template, {}, { dialect: this.conn.dialect, what, castParams }), { what: 'iterate_query' });
    let n = 0;
    for await (const row of rows) {
      n++;
      const user = userOfIterateRow(row, this.source);
      if (user === undefined) {
        this.warn(`${what}: row ${n} has no user name (NULL or empty); skipped`);
        continue;
      }
      let record: UserRecord | undefined;
      try {
        record = await this.lookup(user);
      } catch (err) {
        // Two rows or a bad uid fail this user alone; an unreachable database fails the run.
        if (err instanceof MailferryError && err.kind === 'data') {
          yield { user, error: err };
          continue;
        }
        throw err;
      }
      if (!record) {
        this.warn(`${what}: user ${user} is listed, but user_query does not find it; skipped`);
        continue;
      }
      yield record;
    }
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}

/** The sample user the queries are checked with when the configuration is read. */
const SAMPLE = userVars('user@example.org');

export async function openSqlUserDb(options: SqlUserDbOptions): Promise<UserDb> {
  const { source } = options;
  const target = parseConnect(options.connect, `${source} connect`);
  const dialect: SqlDialect = target.kind === 'pg' ? 'pg' : 'sqlite';
  // Mistakes in the templates are configuration errors now, not at the first user.
  bindQuery(options.user_query, SAMPLE, { dialect, what: `${source} user_query` });
  if (options.iterate_query) bindQuery(options.iterate_query, {}, { dialect, what: `${source} iterate_query` });
  let conn: SqlConnection;
  if (target.kind === 'pg') {
    const { PgConnection } = await import('./pg-connection.js');
    conn = await PgConnection.open(target.settings, target.label, source);
  } else {
    const { SqliteConnection } = await import('./sqlite-connection.js');
    conn = new SqliteConnection(target.file, source);
  }
  return new SqlUserDb(conn, options, target.masked);
}
