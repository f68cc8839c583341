/**
 * Dovecot's static userdb: every name is a user, its fields the same template for all
 * (`static:uid=vmail gid=vmail home=/srv/mail/%d/%n`). It cannot list users: -A needs another
 * userdb, -u and -F name them.
 */
import { MailferryError } from '../../model/errors.js';
import { expandTemplate, userVars } from '../template.js';
import type { UserDb, UserRecord } from './userdb.js';
import { recordFromFields } from './userdb-fields.js';

export function parseStaticArgs(args: string, where: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const item of args.split(/\s+/)) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new MailferryError('config', `${where}: static userdb field '${item}' is not key=value`);
    const key = item.slice(0, eq).replace(/^userdb_/, '');
    fields[key] = item.slice(eq + 1);
  }
  return fields;
}

export class StaticUserDb implements UserDb {
  readonly description: string;
  private readonly fields: Record<string, string>;
  constructor(args: string, private readonly where: string) {
    this.fields = parseStaticArgs(args, where);
    this.description = `static ${args}`.trim();
  }

  async lookup(user: string): Promise<UserRecord | undefined> {
    const vars = userVars(user);
    const fields: Record<string, string> = {};
    // A path built from these is checked where it becomes a location; here they are only text.
    for (const [k, v] of Object.entries(this.fields)) fields[k] = expandTemplate(v, vars, { what: `${this.where} static field ${k}` });
    return recordFromFields(user, fields, `${this.where} (static userdb)`);
  }

  // eslint-disable-next-line require-yield
  async *iterate(): AsyncIterable<UserRecord> {
    throw new MailferryError('config', `${this.where}: the static userdb cannot list its users; name them with -u or -F, or use a userdb that can (passwd-file, passwd, sql)`);
  }

  async close(): Promise<void> {}
}
