/**
 * Dovecot's userdb field names -> a UserRecord. Every userdb (passwd-file extra fields, SQL
 * columns) hands its fields here, so `home`, `mail`, `mail_replica` and `noreplicate` mean the
 * same thing whichever database they come from.
 */
import { MailferryError } from '../../model/errors.js';
import { resolveGid, resolveUid } from './system-accounts.js';
import type { UserRecord } from './userdb.js';

const USERDB_PREFIX = 'userdb_';

/**
 * Dovecot's reading of a yes/no userdb field (mail_user_plugin_getenv_bool): a field that is
 * set is yes unless it starts with n, N, 0, f or F. So `t` (a PostgreSQL boolean as text),
 * `on` and even an empty value are yes: a user Dovecot's replicator leaves alone is left
 * alone here too.
 */
export function isTruthyField(value: string): boolean {
  return !/^[nN0fF]/.test(value);
}

function idField(user: string, name: 'uid' | 'gid', value: string, where: string): number {
  const v = value.trim();
  // Number() would take '1e3', '0x10' and ' ', none of which Dovecot accepts as an id.
  if (/^\d+$/.test(v)) {
    // (uid_t)-1 means "no id" to the kernel; anything above does not fit in a uid_t.
    if (Number(v) >= 0xffffffff) throw new MailferryError('data', `${where}: user ${user}: ${name} '${value}' is out of range`);
    return Number(v);
  }
  // Dovecot takes an account or group name too (uid=vmail), as getpwnam/getgrnam would.
  try {
    if (v !== '') return name === 'uid' ? resolveUid(v, where) : resolveGid(v, where);
  } catch {
    // Unknown name, or no /etc/passwd to look in: the value is bad either way.
  }
  throw new MailferryError('data', `${where}: user ${user}: ${name} '${value}' is neither a number nor a system ${name === 'uid' ? 'account' : 'group'}`);
}

/**
 * `fields` maps field names (a `userdb_` prefix is stripped) to values; `where` names their
 * origin (a file line, a query setting) for messages. A field named twice, with and without
 * the prefix, keeps the prefixed one: Dovecot's userdb_ fields are the userdb's own.
 */
export function recordFromFields(user: string, fields: Record<string, string>, where: string): UserRecord {
  const plain: Record<string, string> = {};
  const prefixed: Record<string, string> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (key.startsWith(USERDB_PREFIX) && key.length > USERDB_PREFIX.length) prefixed[key.slice(USERDB_PREFIX.length)] = value;
    else plain[key] = value;
  }
  const merged = { ...plain, ...prefixed };
  const record: UserRecord = { user, extra: {} };
  for (const [key, value] of Object.entries(merged)) {
    switch (key) {
      case 'home':
        if (value !== '') record.home = value;
        break;
      case 'uid':
        record.uid = idField(user, key, value, where);
        break;
      case 'gid':
        record.gid = idField(user, key, value, where);
        break;
      case 'mail':
        if (value !== '') record.mail = value;
        break;
      case 'mail_replica':
        if (value !== '') record.mailReplica = value;
        break;
      case 'noreplicate':
        record.noReplicate = isTruthyField(value);
        break;
      default:
        record.extra[key] = value;
    }
  }
  return record;
}
