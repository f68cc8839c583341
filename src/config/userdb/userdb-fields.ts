/**
 * Dovecot's userdb field names -> a UserRecord, shared by every driver so a passwd-file line,
 * an SQL row and a static template mean the same thing.
 */
import { MailferryError } from '../../model/errors.js';
import type { UserRecord } from './userdb.js';

const TRUE_VALUES = new Set(['1', 'y', 'yes', 'true', 'on']);

function id(value: string, field: string, user: string, where: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new MailferryError('data', `${where}: user ${user}: ${field} '${value}' is not a number`);
  }
  return n;
}

/** `fields` are keyed by Dovecot's names, any `userdb_` prefix already removed or removed here. */
export function recordFromFields(user: string, fields: Record<string, string>, where: string): UserRecord {
  const record: UserRecord = { user, extra: {} };
  for (const [rawKey, value] of Object.entries(fields)) {
    const key = rawKey.replace(/^userdb_/, '');
    switch (key) {
      case 'home':
        if (value !== '') record.home = value;
        break;
      case 'uid':
        if (value !== '') record.uid = id(value, 'uid', user, where);
        break;
      case 'gid':
        if (value !== '') record.gid = id(value, 'gid', user, where);
        break;
      case 'mail':
        if (value !== '') record.mail = value;
        break;
      case 'mail_replica':
        if (value !== '') record.mailReplica = value;
        break;
      case 'noreplicate':
        record.noReplicate = TRUE_VALUES.has(value.toLowerCase());
        break;
      default:
        record.extra[key] = value;
    }
  }
  return record;
}
