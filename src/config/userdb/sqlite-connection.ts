/**
 * The sql userdb's SQLite side (better-sqlite3), opened read-only: one handle for lookups, and
 * one more per iteration, whose rows are stepped one at a time (`.iterate()`), since a handle
 * with a statement still running takes no other. Values become text as Dovecot's sqlite
 * driver reads them; NULL stays NULL.
 */
import { accessSync, constants } from 'node:fs';
import Database from 'better-sqlite3';
import { MailferryError, type ErrorKind } from '../../model/errors.js';
import type { QueryContext, SqlConnection, SqlRow } from './sql-connection.js';
import type { BoundQuery } from './sql-query.js';

/** How long a read waits for a writer's lock before it is a temporary failure. */
const BUSY_TIMEOUT_MS = 5000;

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return String(value);
}

function rowOf(raw: Record<string, unknown>): SqlRow {
  const row: SqlRow = {};
  for (const [k, v] of Object.entries(raw)) row[k] = text(v);
  return row;
}

interface Iteration {
  db: Database.Database;
  rows: IterableIterator<unknown> | undefined;
}

/** Ends an iteration's statement, then its handle; either may already be gone. */
function finish(it: Iteration): void {
  try {
    it.rows?.return?.();
  } catch {
    // The handle was closed under it.
  }
  it.db.close();
}

export class SqliteConnection implements SqlConnection {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly iterating = new Set<Iteration>();

  constructor(
    private readonly file: string,
    private readonly source: string,
  ) {
    this.db = this.open();
  }

  private open(): Database.Database {
    try {
      // better-sqlite3 says only "unable to open database file"; access() says why.
      accessSync(this.file, constants.R_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new MailferryError('config', `${this.source}: SQLite ${this.file}: no such file (check connect)`);
      if (code === 'EACCES' || code === 'EPERM') throw new MailferryError('permission', `${this.source}: SQLite ${this.file}: permission denied`);
      throw new MailferryError('tempfail', `${this.source}: SQLite ${this.file}: ${code ?? String(err)}`);
    }
    try {
      const db = new Database(this.file, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
      // A file that is no database fails here, before any user is looked up.
      db.pragma('schema_version');
      return db;
    } catch (err) {
      throw this.failure(err, { what: 'connect' });
    }
  }

  async query(bind: (castParams: boolean) => BoundQuery, ctx: QueryContext): Promise<SqlRow[]> {
    try {
      const q = bind(false);
      const stmt = this.db.prepare(q.text);
      if (!stmt.reader) throw new MailferryError('config', `${this.source} ${ctx.what}: the query returns no rows (it must be a SELECT)`);
      return (stmt.all(...q.values) as Record<string, unknown>[]).map(rowOf);
    } catch (err) {
      throw this.failure(err, ctx);
    }
  }

  async *stream(bind: (castParams: boolean) => BoundQuery, ctx: QueryContext): AsyncGenerator<SqlRow> {
    const it: Iteration = { db: this.open(), rows: undefined };
    this.iterating.add(it);
    try {
      let rows: IterableIterator<unknown>;
      try {
        const q = bind(false);
        const stmt = it.db.prepare(q.text);
        if (!stmt.reader) throw new MailferryError('config', `${this.source} ${ctx.what}: the query returns no rows (it must be a SELECT)`);
        rows = it.rows = stmt.iterate(...q.values);
      } catch (err) {
        throw this.failure(err, ctx);
      }
      for (;;) {
        let next: IteratorResult<unknown>;
        try {
          next = rows.next();
        } catch (err) {
          throw this.failure(err, ctx);
        }
        if (next.done) return;
        yield rowOf(next.value as Record<string, unknown>);
      }
    } finally {
      this.iterating.delete(it);
      finish(it);
    }
  }

  async close(): Promise<void> {
    for (const it of this.iterating) finish(it);
    this.iterating.clear();
    this.db.close();
  }

  private failure(err: unknown, ctx: QueryContext): MailferryError {
    if (err instanceof MailferryError) return err;
    const code = (err as { code?: string }).code ?? '';
    const message = (err as Error).message ?? String(err);
    const make = (kind: ErrorKind, msg: string) => new MailferryError(kind, msg, { cause: err });
    const at = `${this.source}: SQLite ${this.file}`;
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || code.startsWith('SQLITE_IOERR') || code === 'SQLITE_NOMEM' || code === 'SQLITE_PROTOCOL') {
      return make('tempfail', `${at}: ${message}; run again later`);
    }
    if (code === 'SQLITE_NOTADB') return make('config', `${at}: not an SQLite database (check connect)`);
    if (code.startsWith('SQLITE_CORRUPT')) return make('data', `${at}: ${message}`);
    if (code.startsWith('SQLITE_CANTOPEN')) return make('tempfail', `${at}: ${message}`);
    if (code.startsWith('SQLITE_AUTH') || code.startsWith('SQLITE_PERM') || code.startsWith('SQLITE_READONLY')) return make('permission', `${at}: ${message}`);
    if (ctx.what === 'connect') return make('config', `${at}: ${message}`);
    // Prepare errors (no such column or table, syntax) and wrong parameter counts.
    return make('config', `${this.source} ${ctx.what}: ${message}`);
  }
}
