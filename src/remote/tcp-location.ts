/**
 * `tcp:` and `tcps:` locations, pure: a `mailferry server` on another host, which serves the
 * user this run is for from its own configuration.
 *
 *   tcp:[USER@]HOST[:PORT]
 *   tcps:[USER@]HOST[:PORT][?cafile=FILE&cert=FILE&key=FILE]
 *
 * The user is USER when given (a template over users writes `tcps:%u@host`), else the user of
 * the run over users, else the one running mailferry. PORT defaults to server_port. cafile=
 * adds a CA to the system's for checking the server's certificate; cert= and key= present a
 * client certificate. A value with '&' or '%' in it is percent-encoded.
 */
import { usageError } from '../model/errors.js';

export interface TcpLocation {
  /** A store on another host: it checks, creates and locks its mail itself. */
  kind: 'remote';
  transport: 'tcp' | 'tcps';
  raw: string;
  user?: string;
  host: string;
  port?: number;
  cafile?: string;
  cert?: string;
  key?: string;
}

const SCHEME = /^(tcps?):/i;
const PARAMS = ['cafile', 'cert', 'key'] as const;

export function isTcpLocation(raw: string): boolean {
  return SCHEME.test(raw);
}

function bad(raw: string, why: string): Error {
  return usageError(`invalid location '${raw}': ${why} (expected tcp:[USER@]HOST[:PORT] or tcps:[USER@]HOST[:PORT][?cafile=FILE], e.g. tcps:mail2.example.org)`);
}

function decode(raw: string, value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw bad(raw, `'${value}' is not percent-encoded correctly`);
  }
}

export function parseTcpLocation(raw: string): TcpLocation {
  const m = SCHEME.exec(raw);
  if (!m) throw bad(raw, 'it does not start with tcp: or tcps:');
  const transport = m[1]!.toLowerCase() as 'tcp' | 'tcps';
  let rest = raw.slice(m[0].length);
  let query: string | undefined;
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  // The user may hold '@' itself (alice@example.org@mail2): the host follows the last one.
  let user: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    user = decode(raw, rest.slice(0, at));
    rest = rest.slice(at + 1);
    if (user === '') throw bad(raw, 'the user before @ is empty');
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(user)) throw bad(raw, 'the user holds control characters');
  }
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw bad(raw, "'[' without ']' around the host");
    host = rest.slice(1, close);
    if (!/^[0-9A-Fa-f:.]+$/.test(host) || !host.includes(':')) throw bad(raw, `'${host}' is not an IPv6 address`);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw bad(raw, `unexpected '${after}' after the host`);
      portText = after.slice(1);
    }
  } else {
    const colon = rest.indexOf(':');
    host = colon < 0 ? rest : rest.slice(0, colon);
    if (colon >= 0) portText = rest.slice(colon + 1);
    if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(host)) throw bad(raw, host === '' ? 'the host is empty' : `'${host}' is not a host name (an IPv6 address goes in [ ])`);
  }
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) throw bad(raw, `'${portText}' is not a port number`);
  }
  const loc: TcpLocation = { kind: 'remote', transport, raw, host, ...(user !== undefined ? { user } : {}), ...(port !== undefined ? { port } : {}) };
  if (query !== undefined) {
    if (transport === 'tcp') throw bad(raw, 'tcp: is plaintext and takes no TLS options; use tcps:');
    for (const pair of query.split('&')) {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      if (!(PARAMS as readonly string[]).includes(name)) throw bad(raw, `unknown option '${name}' (known: ${PARAMS.join(', ')})`);
      const value = eq < 0 ? '' : decode(raw, pair.slice(eq + 1));
      if (value === '') throw bad(raw, `${name}= needs a file`);
      const p = name as (typeof PARAMS)[number];
      if (loc[p] !== undefined) throw bad(raw, `${name}= given twice`);
      loc[p] = value;
    }
    if ((loc.cert === undefined) !== (loc.key === undefined)) throw bad(raw, 'cert= and key= go together');
  }
  return loc;
}

/** The location as messages show it: scheme, host and port. */
export function tcpPeerName(loc: TcpLocation, defaultPort: number): string {
  const host = loc.host.includes(':') ? `[${loc.host}]` : loc.host;
  return `${loc.transport}:${host}:${loc.port ?? defaultPort}`;
}
