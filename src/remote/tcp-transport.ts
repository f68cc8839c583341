/**
 * The client end of a `tcp:` or `tcps:` connection: connects (TLS 1.2 or newer, the server's
 * certificate checked against the system's CAs and cafile=), authenticates (tcp-auth.ts) and
 * hands back the socket for the protocol. Every way this can fail is one line with the
 * status that fits it: a certificate that does not check out, or a server that speaks TLS where
 * plaintext was asked for (or the reverse), is a configuration error (78); a refused secret
 * is 77; a server that cannot be reached, or closes on us, is 75.
 */
import { existsSync } from 'node:fs';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, rootCertificates, type TLSSocket } from 'node:tls';
import { MailferryError, tempError } from '../model/errors.js';
import { LineError, LineReader } from './auth-lines.js';
import { readSiteFile } from './site-file.js';
import {
  AuthSyntaxError,
  BINDING_BYTES,
  BINDING_LABEL,
  computeMac,
  encodeClientHello,
  encodeResponse,
  macMatches,
  MAX_AUTH_LINE,
  newNonce,
  parseChallenge,
  parseResult,
  type AuthResult,
  type Challenge,
} from './tcp-auth.js';
import type { TcpLocation } from './tcp-location.js';

export interface TcpConnectOptions {
  port: number;
  user: string;
  /** The shared secret; undefined when the client has none (a client certificate may do). */
  secret?: Buffer;
  /** Seconds the server may make us wait for another connection of this user to end (-l). */
  lockSeconds: number;
  /** Milliseconds to connect, and for each answer of the server. */
  timeoutMs: number;
  /** How messages name the server: `server tcps:mail2:12346`. */
  label: string;
}

/** Debian's bundle, where an administrator's own CAs go (update-ca-certificates). */
const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

const CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'INVALID_CA', 'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH', 'CERT_CHAIN_TOO_LONG', 'INVALID_PURPOSE',
]);

/**
 * `cafileOnly`: trust the cafile alone. A context holding the system's CAs (Node's roots and
 * Debian's bundle, some 300 certificates) took 0.18 CPU seconds to build, a third of a no-op
 * run's client; a server whose certificate the cafile vouches for needs none of them.
 */
function tlsOptions(loc: TcpLocation, cafileOnly = false) {
  const ca: (string | Buffer)[] = cafileOnly ? [] : [...rootCertificates];
  if (!cafileOnly && existsSync(SYSTEM_CA_BUNDLE)) ca.push(readSiteFile(SYSTEM_CA_BUNDLE, 'CA bundle'));
  if (loc.cafile !== undefined) ca.push(readSiteFile(loc.cafile, 'cafile'));
  return {
    ca,
    ...(loc.cert !== undefined ? { cert: readSiteFile(loc.cert, 'client certificate'), key: readSiteFile(loc.key!, 'client key') } : {}),
    minVersion: 'TLSv1.2' as const,
    // SNI carries names only.
    ...(isIP(loc.host) ? {} : { servername: loc.host }),
  };
}

/** A connection error as a one-line MailferryError of the right kind. */
function connectError(err: NodeJS.ErrnoException, loc: TcpLocation, label: string): MailferryError {
  const code = err.code ?? '';
  if (CERT_CODES.has(code)) {
    const hint = loc.cafile === undefined ? ': give the CA that signed it with ?cafile=FILE' : ` (checked against the system's CAs and ${loc.cafile})`;
    return new MailferryError('config', `${label}: the server's certificate is not trusted: ${err.message}${hint}`);
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_HTTP_REQUEST') {
    return new MailferryError('config', `${label}: the server does not speak TLS there (a plaintext server is reached with tcp:)`);
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return new MailferryError('config', `${label}: TLS failed: ${err.message.split('\n')[0]}`);
  if (code === 'ENOTFOUND') return new MailferryError('config', `${label}: no such host ${loc.host}`);
  const what = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ETIMEDOUT' ? 'connection timed out' : err.message;
  return tempError(`${label}: ${what}`, err);
}

/**
 * Connects; for tcps:, the server's certificate checked against the system's CAs and the
 * cafile. With a cafile, a first handshake trusts it alone (see tlsOptions) and the connection
 * is kept only when that proves the server (chain and name, `authorized`); otherwise it is
 * closed before a byte is sent, and a second one checks against everything, failing as it must.
 */
async function openSocket(loc: TcpLocation, opts: TcpConnectOptions): Promise<Socket | TLSSocket> {
  if (loc.transport === 'tcps' && loc.cafile !== undefined) {
    const sock = await attempt(loc, opts, true);
    if (sock) return sock;
  }
  return (await attempt(loc, opts, false))!;
}

/** One connection; with `cafileOnly`, undefined when the cafile does not prove the server. */
function attempt(loc: TcpLocation, opts: TcpConnectOptions, cafileOnly: boolean): Promise<Socket | TLSSocket | undefined> {
  return new Promise((resolve, reject) => {
    const tls = loc.transport === 'tcps';
    const sock = tls
      ? tlsConnect({ host: loc.host, port: opts.port, ...tlsOptions(loc, cafileOnly), ...(cafileOnly ? { rejectUnauthorized: false } : {}) })
      : netConnect({ host: loc.host, port: opts.port });
    // Requests and answers are small and wait on each other: never held back for Nagle.
    sock.once('connect', () => sock.setNoDelay(true));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(tempError(`${opts.label}: no connection within ${Math.round(opts.timeoutMs / 1000)} seconds (-T)`));
    }, opts.timeoutMs);
    sock.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      sock.off('error', onError);
      if (cafileOnly && !(sock as TLSSocket).authorized) {
        sock.destroy();
        resolve(undefined);
      } else resolve(sock);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(connectError(err as NodeJS.ErrnoException, loc, opts.label));
    };
    sock.on('error', onError);
  });
}

function startsLikeTls(bytes: Buffer): boolean {
  // A TLS record: handshake (22) or alert (21), then major version 3.
  return bytes.length >= 2 && (bytes[0] === 0x16 || bytes[0] === 0x15) && bytes[1] === 0x03;
}

/** The server's first answer is a challenge, or a refusal made before any (plaintext to a TLS-only server). */
async function readChallenge(reader: LineReader, loc: TcpLocation, opts: TcpConnectOptions): Promise<Challenge> {
  let line: Buffer;
  try {
    line = await reader.next(opts.timeoutMs);
  } catch (err) {
    if (!(err instanceof LineError)) throw err;
    if (loc.transport === 'tcp' && startsLikeTls(err.received)) {
      throw new MailferryError('config', `${opts.label}: the server speaks TLS: use tcps:`);
    }
    if (err.reason === 'timeout') throw tempError(`${opts.label}: no answer from the server within ${Math.round(opts.timeoutMs / 1000)} seconds (-T)`);
    if (err.reason === 'too-long') throw new MailferryError('config', `${opts.label}: the server is not a mailferry server`);
    throw tempError(`${opts.label}: the server closed the connection before authentication (it may be at its connection limit, or slowing down this address)`);
  }
  try {
    return parseChallenge(line);
  } catch (err) {
    if (!(err instanceof AuthSyntaxError)) throw err;
    let refusal: AuthResult | undefined;
    try {
      refusal = parseResult(line);
    } catch {
      throw new MailferryError('config', `${opts.label}: the server is not a mailferry server (it answered something else)`);
    }
    if (refusal.ok) throw new MailferryError('config', `${opts.label}: the server accepted without a challenge; refusing to go on`);
    throw new MailferryError(refusal.kind, `${opts.label}: ${refusal.error}`);
  }
}

/** Connects and authenticates; the socket comes back paused, holding what followed (resume it once the protocol's reader is attached). */
export async function connectTcp(loc: TcpLocation, opts: TcpConnectOptions): Promise<Socket> {
  const sock = await openSocket(loc, opts);
  const reader = new LineReader(sock, MAX_AUTH_LINE);
  try {
    const clientNonce = newNonce();
    sock.write(encodeClientHello({ user: opts.user, nonce: clientNonce, wait: opts.lockSeconds }));
    const challenge = await readChallenge(reader, loc, opts);
    const binding = loc.transport === 'tcps' ? (sock as TLSSocket).exportKeyingMaterial(BINDING_BYTES, BINDING_LABEL, Buffer.alloc(0)) : Buffer.alloc(0);
    const transcript = { serverNonce: challenge.nonce, clientNonce, user: opts.user, binding };
    sock.write(encodeResponse(opts.secret ? computeMac(opts.secret, 'client', transcript) : undefined));
    let result: AuthResult;
    try {
      // The server answers once the user's other connection has ended: up to -l.
      result = parseResult(await reader.next(opts.timeoutMs + opts.lockSeconds * 1000));
    } catch (err) {
      if (err instanceof AuthSyntaxError) throw new MailferryError('config', `${opts.label}: the server answered the authentication with something else`);
      if (err instanceof LineError) {
        throw err.reason === 'timeout'
          ? tempError(`${opts.label}: no answer to the authentication within ${Math.round(opts.timeoutMs / 1000) + opts.lockSeconds} seconds`)
          : tempError(`${opts.label}: the server closed the connection during authentication`);
      }
      throw err;
    }
    if (!result.ok) {
      const hint = opts.secret === undefined && result.kind === 'permission' ? ' (this client has no secret: set server_secret_file or MAILFERRY_SECRET)' : '';
      throw new MailferryError(result.kind, `${opts.label}: ${result.error}${hint}`);
    }
    // Where the secret was what authenticated us, the server must hold it too; a TLS server
    // proved itself with its certificate already.
    if (opts.secret !== undefined && !challenge.cert && !macMatches(opts.secret, 'server', transcript, result.proof)) {
      throw new MailferryError('permission', `${opts.label}: the server did not prove that it holds the shared secret; refusing to go on`);
    }
    const rest = reader.detach();
    if (rest.length > 0) sock.unshift(rest);
    return sock;
  } catch (err) {
    reader.detach();
    sock.destroy();
    throw err;
  }
}
