/**
 * The passwd userdb: the system's own accounts, those with a uid between first_valid_uid and
 * last_valid_uid (0: no upper limit), as Dovecot's passwd userdb and its iteration give them.
 */
import { readSystemAccounts, type SystemAccount } from './system-accounts.js';
import type { UserDb, UserRecord } from './userdb.js';

export class PasswdUserDb implements UserDb {
  readonly description: string;
  constructor(
    private readonly firstValidUid: number,
    private readonly lastValidUid: number,
    private readonly file = '/etc/passwd',
  ) {
    this.description = `passwd (${file}, uids ${firstValidUid}..${lastValidUid || 'any'})`;
  }

  private valid(a: SystemAccount): boolean {
    return a.uid >= this.firstValidUid && (this.lastValidUid === 0 || a.uid <= this.lastValidUid);
  }

  private record(a: SystemAccount): UserRecord {
    return { user: a.name, uid: a.uid, gid: a.gid, home: a.home || undefined, extra: {} };
  }

  async lookup(user: string): Promise<UserRecord | undefined> {
    const a = readSystemAccounts(this.file).find((x) => x.name === user);
    return a && this.valid(a) ? this.record(a) : undefined;
  }

  async *iterate(): AsyncIterable<UserRecord> {
    for (const a of readSystemAccounts(this.file)) if (this.valid(a)) yield this.record(a);
  }

  async close(): Promise<void> {}
}
