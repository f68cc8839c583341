/**
 * Every setting mailferry has, named as Dovecot names the same knobs. One table serves the
 * configuration file and `-o setting=value`, so both accept the same names and values and
 * refuse the same mistakes. Pure: no I/O (config-file.ts reads the file).
 */
import { MailferryError } from '../model/errors.js';
import { MAX_FRAME_PAYLOAD } from '../remote/frame-codec.js';
import { parseHttpAddress } from '../replicator/status-http-address.js';

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
  /** The port of `mailferry server` and of tcp:/tcps: locations that name none. */
  server_port: number;
  /** The shared secret of `mailferry server` and its clients: the first line of this file. */
  server_secret_file?: string;
  /** `mailferry server`'s certificate chain and key (PEM), and the CA its clients' certificates must chain to. */
  server_tls_cert?: string;
  server_tls_key?: string;
  server_client_ca?: string;
  /** Connections `mailferry server` holds at once, in all and from one address (an IPv6 /64 counts as one). */
  server_max_connections: number;
  server_max_connections_per_address: number;
  /** Seconds a connection may take to authenticate. */
  server_auth_timeout: number;
  /** Seconds an authenticated session may pass without a byte either way. */
  server_idle_timeout: number;
  /** Seconds a session may last in all (0: no limit). */
  server_session_max_time: number;
  /** Failed authentications from one address before its next attempts are slowed (0: never). */
  server_auth_failures: number;
  /** The longest such slow-down, in seconds; it doubles with each further failure. */
  server_auth_backoff: number;
  /** The largest frame (payload bytes) a client may send to `mailferry server`; a larger one ends its session. */
  server_max_frame_size: number;
  /** `mailferry replicator`: where its queue, pid file and socket live (default: replicator in the state directory). */
  replicator_state_dir?: string;
  /** Seconds between full syncs of a user (Dovecot's default: a day). */
  replication_full_sync_interval: number;
  /** Seconds to wait after a failed sync; the wait doubles with each further failure, up to an hour. */
  replication_failure_backoff: number;
  /** Seconds between the checks that fingerprint every user's mail (and poll IMAP sources). */
  replication_check_interval: number;
  /** Seconds a stopping replicator waits for running syncs before it ends them. */
  replication_stop_timeout: number;
  /** Syncs the replicator runs at once. */
  replication_max_conns: number;
  /** Users whose mail the replicator watches; the others are only checked periodically. */
  replication_max_watched_users: number;
  /** Where the replication queue lives: `sqlite` (in replicator_state_dir), or a PostgreSQL URI or libpq `key=value` string shared by replicators on many hosts. */
  replicator_queue: string;
  /** The PostgreSQL schema holding a shared queue's tables. */
  replicator_queue_schema: string;
  /** Seconds a claim on a shared queue lasts unless its replicator renews it. */
  replication_claim_lease: number;
  /** The socket Dovecot 2.3's replication plugin (or its aggregator) notifies; the plugin's fifo is beside it, named `<socket>-fifo`. */
  replication_notify_socket?: string;
  /** Who may write to that socket and fifo (names or numbers): the user Dovecot's mail processes run as, or a group they share. */
  replication_notify_user?: string;
  replication_notify_group?: string;
  /** HOST:PORT where the replicator serves its status page and Prometheus metrics (none by default). */
  replication_http?: string;
}

export const DEFAULT_SETTINGS: Settings = {
  mail_fsync: 'optimized',
  lock_timeout: 30,
  first_valid_uid: 500,
  last_valid_uid: 0,
  server_port: 12346,
  server_max_connections: 256,
  server_max_connections_per_address: 16,
  server_auth_timeout: 10,
  server_idle_timeout: 900,
  server_session_max_time: 86400,
  server_auth_failures: 5,
  server_auth_backoff: 60,
  server_max_frame_size: MAX_FRAME_PAYLOAD,
  replication_full_sync_interval: 86400,
  replication_failure_backoff: 300,
  replication_check_interval: 60,
  replication_stop_timeout: 60,
  replication_max_conns: 10,
  replication_max_watched_users: 1000,
  replicator_queue: 'sqlite',
  replicator_queue_schema: 'mailferry',
  replication_claim_lease: 60,
};

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

const DURATION_UNITS: Record<string, number> = {
  ms: 0.001, msec: 0.001, msecs: 0.001,
  s: 1, sec: 1, secs: 1, second: 1, seconds: 1,
  m: 60, min: 60, mins: 60, minute: 60, minutes: 60,
  h: 3600, hour: 3600, hours: 3600,
  d: 86400, day: 86400, days: 86400,
  w: 604800, week: 604800, weeks: 604800,
};

/** A time as Dovecot writes them (`1 day`, `5 mins`, `30s`, `200ms`) or a number of seconds; in seconds. */
function asDuration(source: SettingSource, key: string, value: unknown, min = 0): number {
  const m = typeof value === 'number' ? ['', String(value), 's'] : typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value) : null;
  const unit = m ? DURATION_UNITS[(m[2] || 's').toLowerCase()] : undefined;
  const secs = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!Number.isFinite(secs) || secs < min) throw bad(source, key, value, `a time such as 30s, 5 mins or 1 day${min > 0 ? ` (at least ${min * 1000} ms)` : ''}`);
  return secs;
}

/** server_max_frame_size's cap. */
const MAX_SERVER_FRAME = 16 * 1024 * 1024;

function positive(source: SettingSource, key: string, value: unknown): number {
  const n = asCount(source, key, value, 'a whole number above 0');
  if (n === 0) throw bad(source, key, value, 'a whole number above 0');
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
  server_port: {
    describe: "the TCP port of mailferry server, and of tcp: and tcps: locations that name none (12346: the one after doveadm's customary 12345)",
    apply: (s, v, src) => {
      const port = asCount(src, 'server_port', v, 'a port number, 1 to 65535');
      if (port < 1 || port > 65535) throw bad(src, 'server_port', v, 'a port number, 1 to 65535');
      s.server_port = port;
    },
  },
  server_secret_file: {
    describe: 'the shared secret of mailferry server and its tcp:/tcps: clients: the first line of this file, 16 bytes at least (clients may set MAILFERRY_SECRET instead)',
    apply: (s, v, src) => void (s.server_secret_file = asString(src, 'server_secret_file', v)),
  },
  server_tls_cert: {
    describe: "mailferry server's certificate chain, PEM (--tls-cert); reread on SIGHUP",
    apply: (s, v, src) => void (s.server_tls_cert = asString(src, 'server_tls_cert', v)),
  },
  server_tls_key: {
    describe: "mailferry server's private key, PEM (--tls-key); reread on SIGHUP",
    apply: (s, v, src) => void (s.server_tls_key = asString(src, 'server_tls_key', v)),
  },
  server_client_ca: {
    describe: 'CA certificates (PEM) a client certificate must chain to; such a certificate then authenticates on its own (--client-ca)',
    apply: (s, v, src) => void (s.server_client_ca = asString(src, 'server_client_ca', v)),
  },
  server_max_connections: {
    describe: 'connections mailferry server holds at once; when full, the oldest one not yet authenticated makes room',
    apply: (s, v, src) => void (s.server_max_connections = positive(src, 'server_max_connections', v)),
  },
  server_max_connections_per_address: {
    describe: 'connections mailferry server holds at once from one client address (an IPv6 /64 counts as one)',
    apply: (s, v, src) => void (s.server_max_connections_per_address = positive(src, 'server_max_connections_per_address', v)),
  },
  server_auth_timeout: {
    describe: 'seconds a connection to mailferry server may take to authenticate before it is closed',
    apply: (s, v, src) => void (s.server_auth_timeout = positive(src, 'server_auth_timeout', v)),
  },
  server_idle_timeout: {
    describe: 'seconds a mailferry server session may pass without a byte either way before it is closed',
    apply: (s, v, src) => void (s.server_idle_timeout = positive(src, 'server_idle_timeout', v)),
  },
  server_session_max_time: {
    describe: 'seconds a mailferry server session may last in all (0: no limit)',
    apply: (s, v, src) => void (s.server_session_max_time = asCount(src, 'server_session_max_time', v, 'whole seconds')),
  },
  server_auth_failures: {
    describe: 'failed authentications from one address before mailferry server slows down its next attempts (0: never)',
    apply: (s, v, src) => void (s.server_auth_failures = asCount(src, 'server_auth_failures', v, 'a count')),
  },
  server_auth_backoff: {
    describe: 'the longest slow-down, in seconds, of an address that keeps failing to authenticate; it doubles from 1 with each failure past server_auth_failures',
    apply: (s, v, src) => void (s.server_auth_backoff = asCount(src, 'server_auth_backoff', v, 'whole seconds')),
  },
  server_max_frame_size: {
    describe: `the largest frame, in bytes of payload, a client may send to mailferry server (a k, M or G suffix multiplies by 1024 each); a larger one ends the session: from ${MAX_FRAME_PAYLOAD / 1024 / 1024}M, the largest frame a client of this version sends, to ${MAX_SERVER_FRAME / 1024 / 1024}M`,
    apply: (s, v, src) => {
      const expected = `a size from ${MAX_FRAME_PAYLOAD} (1M) to ${MAX_SERVER_FRAME} (${MAX_SERVER_FRAME / 1024 / 1024}M) bytes, such as 4M`;
      const m = typeof v === 'number' ? [String(v), String(v), ''] : typeof v === 'string' ? /^\s*(\d{1,12})\s*([kKmMgG]?)\s*$/.exec(v) : null;
      if (!m) throw bad(src, 'server_max_frame_size', v, expected);
      const n = Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase());
      // Below what a client legitimately sends, ordinary syncs would fail; above the cap, each of hundreds of sessions may hold that much.
      if (!Number.isSafeInteger(n) || n < MAX_FRAME_PAYLOAD || n > MAX_SERVER_FRAME) throw bad(src, 'server_max_frame_size', v, expected);
      s.server_max_frame_size = n;
    },
  },
  replicator_state_dir: {
    describe: "where mailferry replicator keeps its queue, pid file and control socket (default: replicator in mailferry's state directory, $XDG_STATE_HOME/mailferry or ~/.local/state/mailferry)",
    apply: (s, v, src) => void (s.replicator_state_dir = asString(src, 'replicator_state_dir', v)),
  },
  replication_full_sync_interval: {
    describe: 'how often the replicator runs a full sync of each user (every mailbox compared), as Dovecot\'s setting: 1 day by default',
    apply: (s, v, src) => void (s.replication_full_sync_interval = asDuration(src, 'replication_full_sync_interval', v, 0.001)),
  },
  replication_failure_backoff: {
    describe: 'how long the replicator waits before trying a user whose sync failed again; the wait doubles with each further failure, up to an hour (5 mins by default)',
    apply: (s, v, src) => void (s.replication_failure_backoff = asDuration(src, 'replication_failure_backoff', v)),
  },
  replication_check_interval: {
    describe: "how often the replicator fingerprints every user's mail to catch changes its watcher missed, and queues users whose mail is on IMAP (1 min by default)",
    apply: (s, v, src) => void (s.replication_check_interval = asDuration(src, 'replication_check_interval', v, 0.1)),
  },
  replication_stop_timeout: {
    describe: 'how long a stopping replicator lets running syncs finish before it ends them (they run again at the next start)',
    apply: (s, v, src) => void (s.replication_stop_timeout = asDuration(src, 'replication_stop_timeout', v)),
  },
  replication_max_conns: {
    describe: 'syncs the replicator runs at once, one worker process each (Dovecot\'s replication_max_conns)',
    apply: (s, v, src) => void (s.replication_max_conns = positive(src, 'replication_max_conns', v)),
  },
  replication_max_watched_users: {
    describe: "users whose mail the replicator watches for changes (about three inotify watches a folder); the others are only checked every replication_check_interval (0: watch nobody)",
    apply: (s, v, src) => void (s.replication_max_watched_users = asCount(src, 'replication_max_watched_users', v, 'a number of users')),
  },
  replication_http: {
    describe: 'HOST:PORT where the replicator serves its status page and Prometheus metrics at /metrics (off by default; no authentication, so a loopback address unless --http-allow-remote)',
    apply: (s, v, src) => {
      const value = asString(src, 'replication_http', v);
      try {
        parseHttpAddress(value);
      } catch (err) {
        throw new MailferryError('config', `${src}: invalid replication_http = ${JSON.stringify(value)}: ${(err as Error).message}`);
      }
      s.replication_http = value;
    },
  },
  replicator_queue: {
    describe: "where the replicator's queue lives: sqlite (the default, in replicator_state_dir, one replicator) or PostgreSQL as a postgresql:// URI or libpq key=value string, shared by replicators on any number of hosts",
    apply: (s, v, src) => {
      const text = asString(src, 'replicator_queue', v).trim();
      if (text === '') throw bad(src, 'replicator_queue', v, 'sqlite, a postgresql:// URI or a libpq key=value string');
      s.replicator_queue = text;
    },
  },
  replicator_queue_schema: {
    describe: 'the PostgreSQL schema that holds a shared replication queue (made on first use): replicators sharing one queue name the same schema',
    apply: (s, v, src) => {
      const text = asString(src, 'replicator_queue_schema', v);
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(text)) throw bad(src, 'replicator_queue_schema', v, 'a lower-case SQL name (letters, digits, _)');
      s.replicator_queue_schema = text;
    },
  },
  replication_claim_lease: {
    describe: "how long a user claimed on a shared queue stays claimed unless its replicator renews the claim (every third of it): a replicator that dies or is cut off leaves its users to the others this long after (1 min by default)",
    apply: (s, v, src) => void (s.replication_claim_lease = asDuration(src, 'replication_claim_lease', v, 0.3)),
  },
  replication_notify_socket: {
    describe: "a socket for Dovecot 2.3's replication plugin (mail_plugins = notify replication), the fifo beside it named <socket>-fifo: point it at Dovecot's base_dir/replication-notify, or name it in the aggregator's replicator_host (unset: no notify socket)",
    apply: (s, v, src) => void (s.replication_notify_socket = asString(src, 'replication_notify_socket', v) || undefined),
  },
  replication_notify_user: {
    describe: "the account owning the notify socket and fifo, the one Dovecot's mail processes run as (vmail); mode 0600 (default: the replicator's own)",
    apply: (s, v, src) => void (s.replication_notify_user = asString(src, 'replication_notify_user', v) || undefined),
  },
  replication_notify_group: {
    describe: 'a group that may also write to the notify socket and fifo (mode 0660 then)',
    apply: (s, v, src) => void (s.replication_notify_group = asString(src, 'replication_notify_group', v) || undefined),
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
