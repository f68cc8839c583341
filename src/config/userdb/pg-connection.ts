/**
 * The sql userdb's PostgreSQL side (node-postgres): one session for lookups, and one more per
 * iteration, whose rows come through a cursor a batch at a time (pg-cursor), never the whole
 * result at once. Sessions are read-only, every value comes back as PostgreSQL's text (a
 * boolean is `t`/`f`, as Dovecot's pgsql driver sees it), and every failure becomes a
 * MailferryError: unreachable is temporary (75), bad SQL is configuration (78), a value a
 * user name cannot be turned into is that user's bad data (65).
 */
import pg from 'pg';
import Cursor from 'pg-cursor';
import { MailferryError, type ErrorKind } from '../../model/errors.js';
import type { PgSettings } from './sql-connect.js';
import type { QueryContext, SqlConnection, SqlRow } from './sql-connection.js';
import type { BoundQuery } from './sql-query.js';
import { PG_NETWORK_CODES } from '../pg-network-codes.js';

/** Rows a cursor fetches per round trip. */
export const CURSOR_BATCH = 500;
/** A lookup that gets no answer within this long means the server or the network hangs. */
const QUERY_TIMEOUT_MS = 60_000;
/** SQLSTATE: a parameter whose type PostgreSQL cannot infer (`SELECT $1 AS user`). */
const INDETERMINATE_DATATYPE = '42P18';

const TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

type Failure = { code?: string; message?: string };

export class PgConnection implements SqlConnection {
  readonly dialect = 'pg' as const;
  private client: pg.Client | undefined;
  private lost: Error | undefined;
  private readonly iterating = new Set<pg.Client>();
  /** Queries (by setting) whose parameters need a text cast; learned from the server once. */
  private readonly castFor = new Set<string>();

  private constructor(
    private readonly settings: PgSettings,
    private readonly label: string,
    private readonly source: string,
  ) {}

  static async open(settings: PgSettings, label: string, source: string): Promise<PgConnection> {
    const c = new PgConnection(settings, label, source);
    c.client = await c.connect();
    return c;
  }

  private async connect(): Promise<pg.Client> {
    const s = this.settings;
    const client = new pg.Client({
      host: s.host,
      port: s.port,
      database: s.database,
      user: s.user,
      password: s.password,
      ssl: s.ssl,
      connectionTimeoutMillis: s.connectTimeoutMs,
      keepAlive: true,
      application_name: s.applicationName,
    });
    // A session the server drops while idle would otherwise be an uncaught 'error' event.
    client.on('error', (err) => {
      if (this.client === client) this.lost = err;
    });
    try {
      await client.connect();
      // user_query and iterate_query read; a query that would write fails here, not in the database.
      await client.query('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY');
    } catch (err) {
      await client.end().catch(() => {});
      throw this.failure(err, { what: 'connect' });
    }
    return client;
  }

  /** The lookup session, connected again when the server dropped the last one (a restart). */
  private async session(): Promise<pg.Client> {
    if (this.client && !this.lost) return this.client;
    const old = this.client;
    this.client = undefined;
    this.lost = undefined;
    await old?.end().catch(() => {});
    this.client = await this.connect();
    return this.client;
  }

  async query(bind: (castParams: boolean) => BoundQuery, ctx: QueryContext): Promise<SqlRow[]> {
    const client = await this.session();
    const run = async (cast: boolean) => {
      const q = bind(cast);
      // Named, so the server parses and plans user_query once per session, not once per user.
      const name = `mailferry_${ctx.what}${cast ? '_cast' : ''}`;
      // Per query, never for the session: a cursor would be cut off after it, mid-iteration.
      return (await client.query({ name, text: q.text, values: q.values, types: TEXT_TYPES, query_timeout: QUERY_TIMEOUT_MS } as pg.QueryConfig)).rows as SqlRow[];
    };
    try {
      try {
        return await run(this.castFor.has(ctx.what));
      } catch (err) {
        if ((err as Failure).code !== INDETERMINATE_DATATYPE || this.castFor.has(ctx.what)) throw err;
        this.castFor.add(ctx.what);
        return await run(true);
      }
    } catch (err) {
      const failure = this.failure(err, ctx);
      // The session may be gone (a server restart): the next lookup connects again.
      if (failure.kind === 'tempfail' && this.client === client) this.lost ??= failure;
      throw failure;
    }
  }

  async *stream(bind: (castParams: boolean) => BoundQuery, ctx: QueryContext): AsyncGenerator<SqlRow> {
    // Lookups run while the cursor is open, and a session runs one statement at a time.
    const client = await this.connect();
    this.iterating.add(client);
    let cursor: Cursor | undefined;
    try {
      // iterate_query has no variables, so no parameter PostgreSQL could fail to type.
      const q = bind(false);
      cursor = client.query(new Cursor(q.text, q.values, { types: TEXT_TYPES }));
      for (;;) {
        const rows = (await cursor.read(CURSOR_BATCH)) as SqlRow[];
        if (rows.length === 0) return;
        yield* rows;
      }
    } catch (err) {
      throw this.failure(err, ctx);
    } finally {
      this.iterating.delete(client);
      await cursor?.close().catch(() => {});
      await client.end().catch(() => {});
    }
  }

  async close(): Promise<void> {
    const clients = [...this.iterating, ...(this.client ? [this.client] : [])];
    this.iterating.clear();
    this.client = undefined;
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }

  /** Any error from pg -> the MailferryError the run reports; never the password, always where. */
  failure(err: unknown, ctx: QueryContext): MailferryError {
    if (err instanceof MailferryError) return err;
    const e = (err ?? {}) as Failure;
    const message = (e.message ?? String(err)).replace(/\s+/g, ' ').trim();
    const at = `${this.source}: ${this.label}`;
    const make = (kind: ErrorKind, text: string) => new MailferryError(kind, text, { cause: err });
    const code = e.code ?? '';
    if (/^[0-9A-Z]{5}$/.test(code)) {
      const cls = code.slice(0, 2);
      if (cls === '28' || code === '3D000') return make('config', `${at}: ${message} (check connect)`);
      if (code === '42501') return make('permission', `${this.source} ${ctx.what}: ${message}`);
      if (['08', '40', '53', '54', '55', '57', '58', 'XX'].includes(cls)) return make('tempfail', `${at}: ${message}; run again later`);
      if (cls === '22' && ctx.user !== undefined) return make('data', `${this.source} ${ctx.what}: user ${ctx.user}: ${message}`);
      return make('config', `${this.source} ${ctx.what}: ${message}`);
    }
    const network = PG_NETWORK_CODES[code];
    if (network) return make('tempfail', `${at}: cannot connect: ${network}; run again when it is reachable`);
    if (/timeout expired/i.test(message)) return make('tempfail', `${at}: no answer within ${this.settings.connectTimeoutMs / 1000} s (connect_timeout); run again when it is reachable`);
    if (/Query read timeout/i.test(message)) return make('tempfail', `${at}: no answer to ${ctx.what} within ${QUERY_TIMEOUT_MS / 1000} s; run again later`);
    if (/terminated|not queryable|ended|closed/i.test(message)) return make('tempfail', `${at}: the connection was lost (${message}); run again`);
    if (/SSL|TLS|certificate|CERT_|self[- ]signed/i.test(`${code} ${message}`)) return make('config', `${at}: ${message} (check sslmode and sslrootcert in connect)`);
    if (ctx.what === 'connect') return make('tempfail', `${at}: cannot connect: ${message}`);
    return make('tempfail', `${this.source} ${ctx.what}: ${message}`);
  }
}
