/**
 * The last fingerprint of each user's mail, kept beside the queue so that changes made while
 * the replicator was down are found by its first check after a restart. This machine's own
 * affair (it fingerprints the mail it can see), so it stays in SQLite whatever the queue is.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { MailferryError } from '../model/errors.js';
import type { Fingerprint } from './mail-fingerprint.js';

export const FINGERPRINT_FILE = 'fingerprints.sqlite';

export class FingerprintStore {
  private constructor(private readonly db: Database.Database) {}

  /** `dir` exists already: the queue made it. */
  static open(dir: string): FingerprintStore {
    const path = join(dir, FINGERPRINT_FILE);
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: 5000 });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec('CREATE TABLE IF NOT EXISTS fingerprints (user TEXT PRIMARY KEY, value TEXT NOT NULL, fresh INTEGER NOT NULL) WITHOUT ROWID');
    } catch (err) {
      throw new MailferryError('tempfail', `${path}: cannot open the replicator's fingerprints: ${(err as Error).message}`, { cause: err });
    }
    return new FingerprintStore(db);
  }

  get(user: string): Fingerprint | undefined {
    const r = this.db.prepare<[string], { value: string; fresh: number }>('SELECT value, fresh FROM fingerprints WHERE user = ?').get(user);
    return r && { value: r.value, fresh: r.fresh === 1 };
  }

  set(user: string, fp: Fingerprint): void {
    this.db.prepare('INSERT INTO fingerprints (user, value, fresh) VALUES (?, ?, ?) ON CONFLICT(user) DO UPDATE SET value = excluded.value, fresh = excluded.fresh').run(user, fp.value, fp.fresh ? 1 : 0);
  }

  /** Forgets users no longer replicated, so a user who comes back is checked from scratch. */
  retain(users: ReadonlySet<string>): void {
    const gone = this.db.prepare<[], { user: string }>('SELECT user FROM fingerprints').all().filter((r) => !users.has(r.user));
    const del = this.db.prepare('DELETE FROM fingerprints WHERE user = ?');
    this.db.transaction(() => {
      for (const r of gone) del.run(r.user);
    })();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
