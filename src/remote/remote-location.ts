/**
 * `remote:` locations, pure: `remote:[login@]host` (the far side serves its own default mail,
 * or the user's), `remote:[login@]host:LOCATION` (it serves LOCATION, for a far host with no
 * configuration yet), and `remoteprefix:` (the same, with the user name and a newline written
 * before the protocol, for a trusted wrapper script on the far side, as dsync has it).
 */
import { usageError } from '../model/errors.js';

export interface RemoteLocation {
  kind: 'remote';
  /** The string as given, for messages. */
  raw: string;
  /** remoteprefix: the user name and a newline go first. */
  prefix: boolean;
  /** Login name on the far host; absent: the transport's default (ssh's own). */
  login?: string;
  host: string;
  /** The mail location the far side serves; absent: its own default (mail_location, the user's mail). */
  location?: string;
}

const SCHEME = /^(remote|remoteprefix):/i;

export function isRemoteLocation(raw: string): boolean {
  return SCHEME.test(raw);
}

function bad(raw: string, why: string): Error {
  return usageError(`invalid remote location '${raw}': ${why} (expected remote:[login@]host[:LOCATION], e.g. remote:backup@nas:maildir:/srv/backup/alice)`);
}

export function parseRemoteLocation(raw: string): RemoteLocation {
  const m = SCHEME.exec(raw);
  if (!m) throw bad(raw, 'it does not start with remote: or remoteprefix:');
  const prefix = m[1]!.toLowerCase() === 'remoteprefix';
  let rest = raw.slice(m[0].length);
  // The login may itself hold '@' (alice@example.org@nas): the host follows the last one
  // before the host part ends.
  let login: string | undefined;
  const hostEnd = (s: string) => {
    if (s.startsWith('[')) {
      const close = s.indexOf(']');
      return close < 0 ? -1 : close + 1;
    }
    const colon = s.indexOf(':');
    return colon < 0 ? s.length : colon;
  };
  const authorityEnd = (() => {
    // Find the end of [login@]host: the first ':' after the last '@' that comes before any ':'
    // of the location (a location always holds a ':').
    const firstColon = rest.indexOf(':');
    const at = rest.lastIndexOf('@', firstColon < 0 ? rest.length : firstColon);
    return at;
  })();
  if (authorityEnd >= 0) {
    login = rest.slice(0, authorityEnd);
    rest = rest.slice(authorityEnd + 1);
    if (login === '') throw bad(raw, 'the login before @ is empty');
    // eslint-disable-next-line no-control-regex
    if (login.startsWith('-') || /[\s\u0000-\u001f\u007f]/.test(login)) throw bad(raw, `the login '${login}' starts with '-' or holds spaces or control characters`);
  }
  const end = hostEnd(rest);
  if (end < 0) throw bad(raw, "'[' without ']' around the host");
  let host = rest.slice(0, end);
  const after = rest.slice(end);
  if (host.startsWith('[')) {
    host = host.slice(1, -1);
    if (!/^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/.test(host)) throw bad(raw, `'${host}' is not an IPv6 address`);
  } else if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(host)) {
    throw bad(raw, host === '' ? 'the host is empty' : `'${host}' is not a host name`);
  }
  let location: string | undefined;
  if (after !== '') {
    if (!after.startsWith(':')) throw bad(raw, `unexpected '${after}' after the host`);
    location = after.slice(1);
    if (location === '') throw bad(raw, 'the location after the host is empty');
    if (!/^(maildir|mbox):|^imaps?:\/\//i.test(location)) throw bad(raw, `'${location}' is not a mail location (maildir:PATH, mbox:PATH, imap://...)`);
  }
  return { kind: 'remote', raw, prefix, host, ...(login !== undefined ? { login } : {}), ...(location !== undefined ? { location } : {}) };
}
