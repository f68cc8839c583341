/**
 * The server's log: lines on stderr (the journal under systemd), one per connection when it
 * ends, with the peer, the user, how it went, what it did and how long it took, as
 * `key=value` pairs a script can split. Nothing secret is ever given to it: the MACs and
 * nonces of the authentication are not logged, and user names are quoted when odd.
 */
import type { SessionCounts } from './session-messages.js';

export interface ConnectionRecord {
  id: number;
  peer: string;
  started: number;
  /** `TLSv1.3`, or `none` for plaintext. */
  tls?: string;
  /** How the client authenticated: `secret`, or `cert CN=...`. */
  auth?: string;
  user?: string;
  /** Milliseconds the connection was held back because its address kept failing to authenticate. */
  backoff?: number;
  /** Milliseconds the connection waited for its user's turn. */
  waited?: number;
  /** `ok`, or why not. */
  result?: string;
  exit?: number;
  counts?: SessionCounts;
  bytesIn?: number;
  bytesOut?: number;
  /** Authentication failures: this address's, and the server's since it started. */
  failures?: { address: number; total: number };
}

export type Log = (line: string) => void;

export function stderrLog(line: string): void {
  process.stderr.write(`mailferry server: ${line}\n`);
}

/** A value as `key=value` shows it: bare when plain, else JSON-quoted (no line break can get in). */
export function logValue(v: string | number): string {
  const s = String(v);
  return /^[A-Za-z0-9._:@+/,[\]-]+$/.test(s) ? s : JSON.stringify(s);
}

export function connectionLine(r: ConnectionRecord, now = Date.now()): string {
  const parts: string[] = [`session ${r.id}`, `peer=${logValue(r.peer)}`];
  if (r.tls !== undefined) parts.push(`tls=${logValue(r.tls)}`);
  if (r.backoff !== undefined) parts.push(`backoff=${(r.backoff / 1000).toFixed(3)}s`);
  if (r.auth !== undefined) parts.push(`auth=${logValue(r.auth)}`);
  if (r.user !== undefined) parts.push(`user=${logValue(r.user.length > 80 ? `${r.user.slice(0, 80)}...` : r.user)}`);
  if (r.waited !== undefined) parts.push(`wait=${(r.waited / 1000).toFixed(3)}s`);
  parts.push(`result=${logValue(r.result ?? 'ok')}`);
  if (r.exit !== undefined) parts.push(`exit=${r.exit}`);
  if (r.counts) {
    const c = r.counts;
    parts.push(`requests=${c.requests}`, `saved=${c.saved}`, `sent=${c.sent}`, `flags=${c.flagUpdates}`, `expunged=${c.expunged}`, `mailbox_changes=${c.mailboxChanges}`);
  }
  if (r.bytesIn !== undefined) parts.push(`in=${r.bytesIn}`, `out=${r.bytesOut ?? 0}`);
  if (r.failures) parts.push(`auth_failures=${r.failures.address}`, `auth_failures_total=${r.failures.total}`);
  parts.push(`time=${((now - r.started) / 1000).toFixed(3)}s`);
  return parts.join(' ');
}
