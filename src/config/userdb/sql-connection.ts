/**
 * What the sql userdb needs from a database, whichever it is: rows of a query (a lookup), and
 * rows of a query one at a time (an iteration). Column values are text or null (SQL NULL:
 * the field is not set).
 */
import type { BoundQuery, SqlDialect } from './sql-query.js';

export type SqlRow = Record<string, string | null>;

export interface QueryContext {
  /** The setting the query comes from (user_query, iterate_query), or `connect`. */
  what: string;
  /** The user a lookup is for: a value the database refuses is that user's bad data. */
  user?: string;
}

export interface SqlConnection {
  readonly dialect: SqlDialect;
  /**
   * Every row of a query. `bind(castParams)` makes the query text and values; PostgreSQL may
   * ask for it again with text casts when the server cannot type a bare parameter.
   */
  query(bind: (castParams: boolean) => BoundQuery, ctx: QueryContext): Promise<SqlRow[]>;
  /** Every row of a query, fetched a batch at a time; lookups may run between rows. */
  stream(bind: (castParams: boolean) => BoundQuery, ctx: QueryContext): AsyncGenerator<SqlRow>;
  close(): Promise<void>;
}
