/**
 * A user database, as Dovecot has them: it answers "who is this user" (lookup) and "who are
 * the users" (iterate). Records carry Dovecot's userdb fields under Dovecot's names, so a
 * passwd-file or SQL table written for Dovecot works unchanged.
 */
import type { MailferryError } from '../../model/errors.js';

export interface UserRecord {
  /** The name as the userdb returns it (alice, or alice@example.org). */
  user: string;
  /** Absolute home directory, when the userdb has one. */
  home?: string;
  uid?: number;
  gid?: number;
  /** The userdb's `mail` field: this user's mail location template (overrides mail_location). */
  mail?: string;
  /** The userdb's `mail_replica` field: where `-d` and the replicator send this user's mail. */
  mailReplica?: string;
  /** `noreplicate`: the replicator leaves this user alone. */
  noReplicate?: boolean;
  /** Every other userdb field, `userdb_` prefix removed, for templates and `mailferry user`. */
  extra: Record<string, string>;
}

/**
 * A user the userdb lists whose entry cannot be used (a malformed passwd-file line, an SQL row
 * with a bad uid): that user fails alone, with this error, and the others still run.
 */
export interface UnusableUser {
  user: string;
  error: MailferryError;
}

export function isUnusableUser(entry: UserRecord | UnusableUser): entry is UnusableUser {
  return 'error' in entry;
}

export interface UserDb {
  /** How the user sees it in messages: `passwd-file /etc/dovecot/users`. */
  readonly description: string;
  /** The user's record, or undefined when the userdb has no such user. */
  lookup(user: string): Promise<UserRecord | undefined>;
  /**
   * Every user, one record at a time: never the whole database in memory. A userdb that cannot
   * list its users (static) throws a configuration error naming itself; a listed user whose
   * entry is unusable comes as an UnusableUser, so it fails alone.
   */
  iterate(): AsyncIterable<UserRecord | UnusableUser>;
  close(): Promise<void>;
}
