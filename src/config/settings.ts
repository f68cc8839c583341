/**
 * Every setting mailferry has, named as Dovecot names the same knobs. One table serves the
 * configuration file and `-o setting=value`, so both accept the same names and values and
 * refuse the same mistakes. Pure: no I/O (config-file.ts reads the file).
 */
import { MailferryError } from '../model/errors.js';

export type FsyncMode = 'always' | 'optimized' | 'never';

/** A userdb as written in the file's `[userdb]` table, or parsed from `DRIVER:ARGS`. */
export interface UserDbSetting {
  driver: string;
  /** `passwd-file:/etc/dovecot/users` has args `/etc/dovecot/users`. */
  args: string;
  /** Further keys of the `[userdb]` table (connect, user_query, iterate_query for sql). */
  options: Record<string, string>;
}

export interface Settings {
  mail_location?: string;
  mail_replica?: string;
  mail_fsync: FsyncMode;
  lock_timeout: number;
  /** From the global --password-file: the password for an IMAP location, first line of the file. */
  password_file?: string;
  /** A command printing an OAuth2 access token, for IMAP locations with auth=xoauth2|oauthbearer. */
  oauth2_token_cmd?: string;
  userdb?: UserDbSetting;
  first_valid_uid: number;
  last_valid_uid: number;
  /** uid/gid for users whose userdb gives none (a static userdb, a -F list): names or numbers. */
  mail_uid?: string;
  mail_gid?: string;
  /** The command that reaches a `remote:` location's far side (%{login}, %{host}, %{user}); unset: ssh. */
  dsync_remote_cmd?: string;
  /** deflate (the default) or none: compression of the protocol to a remote location. */
  dsync_compression?: 'deflate' | 'none';
}

export const DEFAULT_SETTINGS: Settings = { mail_fsync: 'optimized', lock_timeout: 30, first_valid_uid: 500, last_valid_uid: 0 };

/** Where a value came from, for errors: `-o lock_timeout=x` or `/etc/mailferry/mailferry.toml line 3`. */
export type SettingSource = string;

function bad(source: SettingSource, key: string, value: unknown, expected: string): MailferryError {
  return new MailferryError('config', `${source}: invalid ${key} = ${JSON.stringify(value)}: expected ${expected}`);
}

function asString(source: SettingSource, key: string, value: unknown): string {
  if (typeof value !== 'string') throw bad(source, key, value, 'a string');
  return value;
}

function asCount(source: SettingSource, key: string, value: unknown, what: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw bad(source, key, value, what);
  return n;
}

/** `passwd-file:/etc/dovecot/users`, `static:uid=vmail home=/srv/%u`, `passwd`, `sql:/etc/x.toml`. */
export function parseUserDbString(source: SettingSource, value: string): UserDbSetting {
  const colon = value.indexOf(':');
  const driver = (colon < 0 ? value : value.slice(0, colon)).trim();
  if (!/^[a-z][a-z0-9-]*$/.test(driver)) throw bad(source, 'userdb', value, 'DRIVER[:ARGS], e.g. passwd-file:/etc/dovecot/users');
  return { driver, args: colon < 0 ? '' : value.slice(colon + 1), options: {} };
}

function parseUserDbTable(source: SettingSource, value: unknown): UserDbSetting {
  if (typeof value === 'string') return parseUserDbString(source, value);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(source, 'userdb', value, 'DRIVER:ARGS or a [userdb] table');
  const table = value as Record<string, unknown>;
  const options: Record<string, string> = {};
  for (const [k, v] of Object.entries(table)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw bad(source, `userdb.${k}`, v, 'a string');
    options[k] = String(v);
  }
  const driver = options.driver;
  if (!driver) throw new MailferryError('config', `${source}: [userdb] needs a driver (passwd-file, passwd, sql or static)`);
  const args = options.args ?? '';
  delete options.driver;
  delete options.args;
  return { driver, args, options };
}

interface SettingSpec {
  describe: string;
  /** Printed masked by `mailferry config`. */
  secret?: boolean;
  apply(settings: Settings, value: unknown, source: SettingSource): void;
}

export const SETTINGS: Record<string, SettingSpec> = {
  mail_location: {
    describe: "the user's mail, a template (maildir:~/Maildir, mbox:/srv/mail/%u); a userdb's mail field wins",
    apply: (s, v, src) => void (s.mail_location = asString(src, 'mail_location', v)),
  },
  mail_replica: {
    describe: 'where -d and the replicator send a user\'s mail, a template; a userdb\'s mail_replica field wins',
    apply: (s, v, src) => void (s.mail_replica = asString(src, 'mail_replica', v)),
  },
  mail_fsync: {
    describe: 'always | optimized | never: fsync saved messages and their directories before reporting them saved',
    apply: (s, v, src) => {
      if (v !== 'always' && v !== 'optimized' && v !== 'never') throw bad(src, 'mail_fsync', v, 'always, optimized or never');
      s.mail_fsync = v;
    },
  },
  lock_timeout: {
    describe: 'seconds to wait for another run on the same pair and for locks on the mail itself',
    apply: (s, v, src) => void (s.lock_timeout = asCount(src, 'lock_timeout', v, 'whole seconds')),
  },
  oauth2_token_cmd: {
    describe: 'a command printing an OAuth2 access token, for IMAP locations with auth=xoauth2 or oauthbearer',
    apply: (s, v, src) => void (s.oauth2_token_cmd = asString(src, 'oauth2_token_cmd', v)),
  },
  userdb: {
    describe: 'the user database: passwd-file:FILE, passwd, static:ARGS, or a [userdb] table (driver = "sql", connect, user_query, iterate_query)',
    apply: (s, v, src) => void (s.userdb = parseUserDbTable(src, v)),
  },
  first_valid_uid: {
    describe: 'users with a lower uid are refused (the passwd userdb lists none of them)',
    apply: (s, v, src) => void (s.first_valid_uid = asCount(src, 'first_valid_uid', v, 'a uid')),
  },
  last_valid_uid: {
    describe: 'users with a higher uid are refused (0: no limit)',
    apply: (s, v, src) => void (s.last_valid_uid = asCount(src, 'last_valid_uid', v, 'a uid')),
  },
  mail_uid: {
    describe: 'the uid (name or number) for users whose userdb gives none',
    apply: (s, v, src) => void (s.mail_uid = typeof v === 'number' ? String(asCount(src, 'mail_uid', v, 'a uid')) : asString(src, 'mail_uid', v)),
  },
  mail_gid: {
    describe: 'the gid (name or number) for users whose userdb gives none',
    apply: (s, v, src) => void (s.mail_gid = typeof v === 'number' ? String(asCount(src, 'mail_gid', v, 'a gid')) : asString(src, 'mail_gid', v)),
  },
  dsync_remote_cmd: {
    describe: "the command that reaches a remote: location's far side and runs mailferry dsync-server there; %{login}, %{host}, %{user} expanded, an argument whose variables are all empty dropped (default: ssh -l%{login} %{host} mailferry dsync-server -u%{user})",
    apply: (s, v, src) => {
      const cmd = asString(src, 'dsync_remote_cmd', v);
      if (cmd.trim() === '') throw bad(src, 'dsync_remote_cmd', v, 'a command');
      s.dsync_remote_cmd = cmd;
    },
  },
  dsync_compression: {
    describe: 'deflate | none: compress the protocol to a remote: location (deflate, the default, when the far side offers it too)',
    apply: (s, v, src) => {
      if (v !== 'deflate' && v !== 'none') throw bad(src, 'dsync_compression', v, 'deflate or none');
      s.dsync_compression = v;
    },
  },
};

/** Keys of the `[userdb]` table whose values `mailferry config` masks. */
export const SECRET_USERDB_KEYS = ['password', 'connect'];

export function unknownSettingError(source: SettingSource, key: string): MailferryError {
  return new MailferryError('config', `${source}: unknown setting '${key}' (known: ${Object.keys(SETTINGS).join(', ')})`);
}

export function applySetting(settings: Settings, key: string, value: unknown, source: SettingSource): void {
  const spec = Object.hasOwn(SETTINGS, key) ? SETTINGS[key] : undefined;
  if (!spec) throw unknownSettingError(source, key);
  spec.apply(settings, value, source);
}

/** `-o setting=value` overrides, applied over what the file said. */
export function applyOverrides(settings: Settings, overrides: readonly string[]): Settings {
  const out: Settings = { ...settings };
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new MailferryError('usage', `invalid -o '${o}': expected setting=value`);
    const key = o.slice(0, eq);
    try {
      applySetting(out, key, o.slice(eq + 1), `-o ${o}`);
    } catch (err) {
      // A mistake on the command line is a usage error; in the file it is one of configuration.
      if (err instanceof MailferryError && err.kind === 'config') throw new MailferryError('usage', err.message);
      throw err;
    }
  }
  return out;
}
