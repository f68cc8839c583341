/**
 * The sql userdb's `connect` string: which database, and how to say so without its password.
 *
 * - PostgreSQL as a URI, `postgresql://user:password@host:port/dbname?sslmode=require`, or as
 *   Dovecot's dovecot-sql.conf.ext writes it for pgsql, libpq's `key=value` list:
 *   `host=db.example.org dbname=mail user=dovecot password='it''s secret'`.
 * - SQLite as `sqlite:/var/lib/dovecot/users.db`, or a bare absolute path as Dovecot's
 *   sqlite driver takes it.
 *
 * Pure but for reading an sslrootcert file.
 */
import { readFileSync } from 'node:fs';
import { MailferryError } from '../../model/errors.js';

export interface PgSettings {
  host: string;
  port: number;
  database?: string;
  user?: string;
  password?: string;
  /** false, or node's TLS options. */
  ssl: false | { rejectUnauthorized: boolean; ca?: string; checkServerIdentity?: () => undefined };
  /** 0: wait as long as the system does. */
  connectTimeoutMs: number;
  applicationName: string;
}

export type SqlTarget =
  | { kind: 'pg'; settings: PgSettings; /** For messages: host, port and database, never the password. */ label: string; masked: string }
  | { kind: 'sqlite'; file: string; label: string; masked: string };

/** Dovecot sets no connect timeout; a run waiting minutes on an unreachable database helps nobody. */
export const DEFAULT_CONNECT_TIMEOUT_S = 5;
const MASK = '****';
const KNOWN_KEYS = new Set(['host', 'hostaddr', 'port', 'dbname', 'user', 'password', 'sslmode', 'sslrootcert', 'connect_timeout', 'application_name', 'maxconns']);

function bad(where: string, problem: string): MailferryError {
  return new MailferryError('config', `${where}: ${problem}`);
}

/** libpq's `key = value` list: values plain, or in single quotes with \' and \\ escapes. */
export function parseKeyValueConnect(text: string, where: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  for (;;) {
    skipSpace();
    if (i >= text.length) return pairs;
    const key = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))?.[0];
    if (!key) throw bad(where, `expected key=value at character ${i + 1}`);
    i += key.length;
    skipSpace();
    if (text[i] !== '=') throw bad(where, `'${key}' is not followed by '='`);
    i++;
    skipSpace();
    let value = '';
    if (text[i] === "'") {
      i++;
      for (;;) {
        if (i >= text.length) throw bad(where, `the quoted value of ${key} is not closed`);
        const c = text[i]!;
        if (c === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
        } else if (c === "'") {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
    } else {
      while (i < text.length && !/\s/.test(text[i]!)) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i];
        i++;
      }
    }
    pairs.push([key, value]);
  }
}

function quoteValue(value: string): string {
  return value !== '' && /^[^\s'\\]+$/.test(value) ? value : `'${value.replace(/[\\']/g, '\\$&')}'`;
}

function pgSettings(params: Map<string, string>, where: string): PgSettings {
  for (const key of params.keys()) {
    if (!KNOWN_KEYS.has(key)) throw bad(where, `unknown connection parameter '${key}' (known: ${[...KNOWN_KEYS].join(', ')})`);
  }
  // Without a host libpq uses the server's socket directory, /var/run/postgresql on Debian.
  const host = params.get('hostaddr') || params.get('host') || process.env.PGHOST || '/var/run/postgresql';
  if (host.includes(',')) throw bad(where, 'several hosts in one connect string are not supported; name one');
  const portText = params.get('port') || process.env.PGPORT || '5432';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw bad(where, `port '${portText}' is not a port number`);
  const timeoutText = params.get('connect_timeout') ?? String(DEFAULT_CONNECT_TIMEOUT_S);
  if (!/^\d+$/.test(timeoutText)) throw bad(where, `connect_timeout '${timeoutText}' is not a number of seconds`);
  // libpq: 0 waits forever; anything below 2 s is taken as 2 s.
  const timeout = Number(timeoutText) === 0 ? 0 : Math.max(2, Number(timeoutText));
  const sslmode = params.get('sslmode') ?? 'prefer';
  const rootCertFile = params.get('sslrootcert');
  let ca: string | undefined;
  if (rootCertFile) {
    try {
      ca = readFileSync(rootCertFile, 'utf8');
    } catch (err) {
      throw bad(where, `sslrootcert ${rootCertFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  let ssl: PgSettings['ssl'];
  switch (sslmode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      // node's client cannot fall back from TLS to plain as libpq's prefer does: it stays plain.
      ssl = false;
      break;
    case 'require':
      // libpq: encrypted, certificate not checked, unless a root certificate is given.
      ssl = ca ? { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined } : { rejectUnauthorized: false };
      break;
    case 'verify-ca':
      ssl = { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
      break;
    case 'verify-full':
      ssl = { rejectUnauthorized: true, ca };
      break;
    default:
      throw bad(where, `sslmode '${sslmode}' is not one of disable, allow, prefer, require, verify-ca, verify-full`);
  }
  return {
    host,
    port,
    database: params.get('dbname') || undefined,
    user: params.get('user') || undefined,
    password: params.get('password'),
    ssl,
    connectTimeoutMs: timeout * 1000,
    applicationName: params.get('application_name') || 'mailferry',
  };
}

function pgLabel(s: PgSettings): string {
  const at = s.host.startsWith('/') ? `${s.host} (port ${s.port})` : `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`;
  return `PostgreSQL at ${at}, database ${s.database ?? s.user ?? process.env.PGDATABASE ?? process.env.USER ?? '(default)'}`;
}

function parseUri(connect: string, where: string): SqlTarget {
  let url: URL;
  try {
    url = new URL(connect);
  } catch {
    // The string itself is never repeated: it may hold a password.
    throw bad(where, 'not a valid postgresql:// URI');
  }
  const params = new Map<string, string>();
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw bad(where, 'a bad %-escape in the URI');
    }
  };
  if (url.hostname) params.set('host', url.hostname.replace(/^\[(.*)\]$/, '$1'));
  if (url.port) params.set('port', url.port);
  if (url.pathname.length > 1) params.set('dbname', decode(url.pathname.slice(1)));
  if (url.username) params.set('user', decode(url.username));
  if (url.password) params.set('password', decode(url.password));
  for (const [k, v] of url.searchParams) params.set(k, v);
  const settings = pgSettings(params, where);
  if (url.password) url.password = MASK;
  if (url.searchParams.has('password')) url.searchParams.set('password', MASK);
  return { kind: 'pg', settings, label: pgLabel(settings), masked: url.toString() };
}

/** `connect` -> what to open; `where` names the setting for messages (`[userdb] connect`). */
export function parseConnect(connect: string, where: string): SqlTarget {
  const text = connect.trim();
  if (/^sqlite:/i.test(text) || text.startsWith('/')) {
    const file = text.replace(/^sqlite:(\/\/(?=\/))?/i, '');
    if (!file.startsWith('/')) throw bad(where, `the SQLite database needs an absolute file name (sqlite:/var/lib/users.db), got '${file}'`);
    return { kind: 'sqlite', file, label: `SQLite ${file}`, masked: `sqlite:${file}` };
  }
  if (/^postgres(ql)?:\/\//i.test(text)) return parseUri(text, where);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw bad(where, `'${text.slice(0, text.indexOf(':'))}' databases are not supported: connect to PostgreSQL (postgresql://... or host=... dbname=...) or SQLite (sqlite:/path)`);
  }
  if (text === '') throw bad(where, 'is empty');
  const pairs = parseKeyValueConnect(text, where);
  const settings = pgSettings(new Map(pairs), where);
  const masked = pairs.map(([k, v]) => `${k}=${k === 'password' ? MASK : quoteValue(v)}`).join(' ');
  return { kind: 'pg', settings, label: pgLabel(settings), masked };
}
