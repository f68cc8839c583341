/**
 * What a failure of the shared queue's PostgreSQL means, as the sql userdb reads its own:
 * unreachable or cut off is temporary (75) and worth another try, a refused login or a missing
 * database is configuration (78), a missing privilege is permission (77). Messages name the
 * server and database (`label`), never the password. Pure.
 */
import { MailferryError, type ErrorKind } from '../model/errors.js';
import { PG_NETWORK_CODES } from '../config/pg-network-codes.js';

/** SQLSTATE classes of a server that is going away, overloaded or cut off: the same statement may work a moment later. */
const TEMPORARY_CLASSES = ['08', '53', '57', '58'];
/** Serialization failure and deadlock: the transaction lost a race and is simply run again. */
const RACE_CODES = ['40001', '40P01'];

type Failure = { code?: string; message?: string };

/** True when running the transaction again may succeed: the connection, not the statement, failed. */
export function isRetryable(err: unknown): boolean {
  const { code = '', message = '' } = (err ?? {}) as Failure;
  if (RACE_CODES.includes(code) || PG_NETWORK_CODES[code] !== undefined) return true;
  if (/^[0-9A-Z]{5}$/.test(code)) return TEMPORARY_CLASSES.includes(code.slice(0, 2));
  return /terminated|not queryable|ended|closed|timeout/i.test(message);
}

/** True when the session is of no further use (it is closed rather than returned to the pool). */
export function isConnectionLost(err: unknown): boolean {
  const { code = '' } = (err ?? {}) as Failure;
  return !RACE_CODES.includes(code) && isRetryable(err);
}

export function queueFailure(err: unknown, label: string, what: string): MailferryError {
  if (err instanceof MailferryError) return err;
  const e = (err ?? {}) as Failure;
  const message = (e.message ?? String(err)).replace(/\s+/g, ' ').trim();
  const code = e.code ?? '';
  const make = (kind: ErrorKind, text: string) => new MailferryError(kind, `replicator_queue: ${label}: ${text}`, { cause: err });
  if (/^[0-9A-Z]{5}$/.test(code)) {
    const cls = code.slice(0, 2);
    if (cls === '28' || code === '3D000') return make('config', `${message} (check replicator_queue)`);
    if (code === '42501') return make('permission', `${what}: ${message}`);
    if (TEMPORARY_CLASSES.includes(cls) || cls === '40' || cls === '54' || cls === '55' || cls === 'XX') return make('tempfail', `${what}: ${message}; trying again later`);
    return make('config', `${what}: ${message}`);
  }
  const network = PG_NETWORK_CODES[code];
  if (network) return make('tempfail', `cannot connect: ${network}`);
  if (/timeout expired/i.test(message)) return make('tempfail', 'cannot connect: no answer (connect_timeout)');
  if (/Query read timeout/i.test(message)) return make('tempfail', `${what}: no answer in time`);
  if (/terminated|not queryable|ended|closed/i.test(message)) return make('tempfail', `${what}: the connection was lost (${message})`);
  if (/SSL|TLS|certificate|CERT_|self[- ]signed/i.test(`${code} ${message}`)) return make('config', `${message} (check sslmode and sslrootcert in replicator_queue)`);
  return make('tempfail', `${what}: ${message}`);
}
