/**
 * Dovecot's passwd-file userdb: `user:password:uid:gid:gecos:home:shell:extra fields`, the
 * extra fields space-separated `key=value`, `userdb_` marking those of the userdb
 * (`userdb_mail=maildir:~/Maildir`, `userdb_mail_replica=...`, `userdb_noreplicate=y`). The file
 * is read line by line on every lookup and iteration, never held whole: a site's file can hold
 * 100k users.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { MailferryError } from '../../model/errors.js';
import { resolveGid, resolveUid } from './system-accounts.js';
import type { UnusableUser, UserDb, UserRecord } from './userdb.js';
import { recordFromFields } from './userdb-fields.js';

/** The userdb fields of one line, or undefined for comments and blank lines. */
export function parsePasswdFileLine(line: string, where: string): { user: string; fields: Record<string, string> } | undefined {
  const text = line.replace(/\r$/, '');
  if (text.trim() === '' || text.startsWith('#')) return undefined;
  const parts = text.split(':');
  const user = parts[0]!;
  if (user === '') throw new MailferryError('config', `${where}: a line without a user name`);
  const fields: Record<string, string> = {};
  const [, , uid = '', gid = '', , home = '', , ...rest] = parts;
  if (uid !== '') fields.uid = uid;
  if (gid !== '') fields.gid = gid;
  if (home !== '') fields.home = home;
  // Extra fields may themselves hold ':' (mail=maildir:~/Maildir).
  for (const item of rest.join(':').split(/\s+/)) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? 'yes' : item.slice(eq + 1);
    if (key.startsWith('userdb_')) fields[key.slice('userdb_'.length)] = value;
    // Fields without the prefix belong to the passdb, but `noreplicate` is read from either.
    else if (key === 'noreplicate') fields.noreplicate = value;
  }
  for (const k of ['uid', 'gid'] as const) {
    const v = fields[k];
    if (v !== undefined && !/^\d+$/.test(v)) fields[k] = String(k === 'uid' ? resolveUid(v, where) : resolveGid(v, where));
  }
  return { user, fields };
}

export class PasswdFileUserDb implements UserDb {
  readonly description: string;
  constructor(private readonly file: string) {
    this.description = `passwd-file ${file}`;
  }

  private async *lines(): AsyncGenerator<{ line: string; where: string }> {
    const stream = createReadStream(this.file, { encoding: 'utf8' });
    const opened = new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
    try {
      await opened;
      // Opening a directory succeeds; only reading it fails, deep inside readline.
      if ((await stat(this.file)).isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
    } catch (err) {
      stream.destroy();
      const code = (err as NodeJS.ErrnoException).code;
      // A directory or a device named as the file is a configuration mistake, not a passing fault.
      const kind = code === 'EACCES' ? 'permission' : code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR' ? 'config' : 'tempfail';
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory, not a file' : code === 'ENOTDIR' ? 'a part of the path is not a directory' : (err as Error).message;
      throw new MailferryError(kind, `userdb passwd-file ${this.file}: ${why}`);
    }
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    let n = 0;
    try {
      for await (const line of rl) yield { line, where: `${this.file} line ${++n}` };
    } finally {
      rl.close();
      stream.destroy();
    }
  }

  async lookup(user: string): Promise<UserRecord | undefined> {
    for await (const { line, where } of this.lines()) {
      // Cheap test first: most lines are someone else's.
      if (!line.startsWith(`${user}:`)) continue;
      const parsed = parsePasswdFileLine(line, where);
      if (parsed?.user === user) return recordFromFields(user, parsed.fields, where);
    }
    return undefined;
  }

  async *iterate(): AsyncIterable<UserRecord | UnusableUser> {
    // No set of names seen: a name written twice is listed twice, and its second run finds
    // nothing left to do (runs of one user exclude each other).
    for await (const { line, where } of this.lines()) {
      // One malformed line fails its own user, not every user listed after it.
      try {
        const parsed = parsePasswdFileLine(line, where);
        if (parsed) yield recordFromFields(parsed.user, parsed.fields, where);
      } catch (err) {
        if (!(err instanceof MailferryError)) throw err;
        yield { user: line.split(':', 1)[0] || `(${where})`, error: err };
      }
    }
  }

  async close(): Promise<void> {}
}
