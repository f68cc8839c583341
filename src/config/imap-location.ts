/**
 * IMAP locations as URLs: `imap://user@host[:port][/][?option=value&...]` and `imaps://...`.
 * A user name that contains `@` (most do: alice@example.com) may be written as is; the last `@`
 * before the host separates them. Passwords never appear here (see the IMAP store).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { usageError } from '../model/errors.js';

export type ImapTls = 'implicit' | 'required' | 'starttls' | 'none';
export type ImapAuth = 'auto' | 'plain' | 'login' | 'xoauth2' | 'oauthbearer';

export interface ImapLocation {
  kind: 'imap';
  raw: string;
  user: string;
  host: string;
  port: number;
  /**
   * `implicit` for imaps://; for imap://, `starttls` (the default) upgrades when the server
   * offers STARTTLS, `required` refuses a server that does not, `none` never upgrades.
   */
  tls: ImapTls;
  /** PEM file of a CA to trust in addition to the system's (a private or test CA). */
  caFile?: string;
  auth: ImapAuth;
  /** Where the store keeps its index (UIDVALIDITY, UID<->GUID map, modseqs) for this account. */
  stateDir: string;
  /**
   * A file whose first line is this account's password (`passfile=`): for IMAP -> IMAP runs
   * whose two accounts have different passwords. It wins over --password-file.
   */
  passFile?: string;
  /**
   * `xguid=no`: identify messages by the side index and header hashes even where the server
   * offers Dovecot's X-GUID, so that a first sync with a store that already holds the same
   * mail (copied by another tool, so with other GUIDs) matches it by header instead of
   * copying it again.
   */
  ignoreXGuid?: boolean;
}

const TLS_VALUES: readonly ImapTls[] = ['required', 'starttls', 'none'];
const AUTH_VALUES: readonly ImapAuth[] = ['auto', 'plain', 'login', 'xoauth2', 'oauthbearer'];

function expandHome(path: string, home: string): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return home + path.slice(1);
  return path;
}

export function parseImapLocation(raw: string, home: string = process.env.HOME ?? homedir()): ImapLocation {
  const m = /^(imaps?):\/\/([^/?#]*)\/?(\?.*)?$/i.exec(raw);
  if (!m) throw usageError(`invalid IMAP location '${raw}': expected imap://user@host[:port][/?option=value]`);
  const secure = m[1]!.toLowerCase() === 'imaps';
  const authority = m[2]!;
  const at = authority.lastIndexOf('@');
  if (at <= 0) throw usageError(`invalid IMAP location '${raw}': no user name (imap://user@host)`);
  let user: string;
  try {
    user = decodeURIComponent(authority.slice(0, at));
  } catch {
    throw usageError(`invalid IMAP location '${raw}': bad %-escape in the user name`);
  }
  if (user.includes(':')) throw usageError(`invalid IMAP location '${raw}': a password does not belong in the location; use --password-file or MAILFERRY_PASSWORD`);
  const hostPort = authority.slice(at + 1);
  const hp = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::(\d+))?$/.exec(hostPort);
  if (!hp) throw usageError(`invalid IMAP location '${raw}': bad host '${hostPort}'`);
  const host = hp[1]!.replace(/^\[|\]$/g, '');
  const port = hp[2] === undefined ? (secure ? 993 : 143) : Number(hp[2]);
  if (!(port >= 1 && port <= 65535)) throw usageError(`invalid IMAP location '${raw}': bad port '${hp[2]}'`);
  const loc: ImapLocation = { kind: 'imap', raw, user, host, port, tls: secure ? 'implicit' : 'starttls', auth: 'auto', stateDir: '' };
  let stateDir: string | undefined;
  for (const [key, value] of new URLSearchParams(m[3] ?? '')) {
    switch (key) {
      case 'tls':
        if (secure) throw usageError(`tls=${value} in '${raw}': imaps:// is always TLS; use imap:// with tls=required|starttls|none`);
        if (!TLS_VALUES.includes(value as ImapTls)) throw usageError(`invalid tls=${value} in '${raw}' (expected required, starttls or none)`);
        loc.tls = value as ImapTls;
        break;
      case 'cafile':
        if (value === '') throw usageError(`empty cafile= in '${raw}'`);
        loc.caFile = resolve(expandHome(value, home));
        break;
      case 'auth':
        if (!AUTH_VALUES.includes(value as ImapAuth)) throw usageError(`invalid auth=${value} in '${raw}' (expected ${AUTH_VALUES.join(', ')})`);
        loc.auth = value as ImapAuth;
        break;
      case 'xguid':
        if (value !== 'yes' && value !== 'no') throw usageError(`invalid xguid=${value} in '${raw}' (expected yes or no)`);
        loc.ignoreXGuid = value === 'no';
        break;
      case 'passfile':
        if (value === '') throw usageError(`empty passfile= in '${raw}'`);
        loc.passFile = resolve(expandHome(value, home));
        break;
      case 'state':
        if (value === '') throw usageError(`empty state= in '${raw}'`);
        stateDir = resolve(expandHome(value, home));
        break;
      default:
        throw usageError(`unknown option '${key}' in IMAP location '${raw}' (known: tls, cafile, auth, state, passfile, xguid)`);
    }
  }
  const stateHome = process.env.XDG_STATE_HOME || join(home, '.local', 'state');
  loc.stateDir = stateDir ?? join(stateHome, 'mailferry', 'imap', `${encodeURIComponent(user)}@${host.toLowerCase()}:${port}`);
  return loc;
}
