/**
 * The `userdb` setting -> a UserDb: the one place that knows every driver. The sql driver's
 * modules (pg) are loaded only when it is used.
 */
import { MailferryError } from '../../model/errors.js';
import type { Settings } from '../settings.js';
import { PasswdFileUserDb } from './passwd-file-userdb.js';
import { PasswdUserDb } from './passwd-userdb.js';
import { StaticUserDb } from './static-userdb.js';
import type { UserDb } from './userdb.js';

export const USERDB_DRIVERS = ['passwd-file', 'passwd', 'sql', 'static'];

/** `where` names the file or option the setting came from, for messages. */
export async function openUserDb(settings: Settings, where = 'userdb'): Promise<UserDb | undefined> {
  const u = settings.userdb;
  if (!u) return undefined;
  switch (u.driver) {
    case 'passwd-file': {
      const file = u.args.trim();
      if (!file.startsWith('/')) throw new MailferryError('config', `${where}: passwd-file needs an absolute file name (passwd-file:/etc/dovecot/users), got '${u.args}'`);
      return new PasswdFileUserDb(file);
    }
    case 'passwd':
      return new PasswdUserDb(settings.first_valid_uid, settings.last_valid_uid);
    case 'static':
      return new StaticUserDb(u.args, where);
    case 'sql': {
      const { connect, user_query, iterate_query } = u.options;
      if (!connect || !user_query) {
        throw new MailferryError('config', `${where}: the sql userdb needs a [userdb] table with connect and user_query (and iterate_query for -A)`);
      }
      const { openSqlUserDb } = await import('./sql-userdb.js');
      return openSqlUserDb({ connect, user_query, iterate_query, source: where === 'userdb' ? '[userdb]' : `${where} [userdb]` });
    }
    default:
      throw new MailferryError('config', `${where}: unknown userdb driver '${u.driver}' (known: ${USERDB_DRIVERS.join(', ')})`);
  }
}
