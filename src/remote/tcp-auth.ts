/**
 * The authentication that opens every `tcp:` and `tcps:` connection, pure (no I/O). Before the
 * protocol's hello line, four lines of JSON, each at most {@link MAX_AUTH_LINE} bytes:
 *
 *   client  {"auth":1,"user":USER,"nonce":CN,"wait":SECONDS}
 *   server  {"nonce":SN,"cert":true|false}
 *   client  {"mac":M}                              ({} when the client has no secret)
 *   server  {"ok":true,"proof":P} | {"ok":false,"kind":KIND,"error":TEXT}
 *
 * M is HMAC-SHA256 keyed with the shared secret over both nonces, the user name and the TLS
 * channel binding (the connection's exported keying material; empty in plaintext), so the
 * secret never crosses the wire, a recorded exchange fails against the next connection's
 * nonce, and one relayed into another TLS connection fails its binding. P is the same MAC
 * under the server's role: proof that the server holds the secret too. `cert` tells a client
 * its certificate was accepted, which then suffices on its own.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ErrorKind } from '../model/errors.js';

export const AUTH_VERSION = 1;
/** No line of the exchange is longer; a peer sending more is refused before it is parsed. */
export const MAX_AUTH_LINE = 4096;
export const NONCE_BYTES = 32;
const MAC_BYTES = 32;
/** The label of the TLS exporter both sides derive the channel binding from. */
export const BINDING_LABEL = 'EXPORTER-mailferry-auth';
export const BINDING_BYTES = 32;
/** The longest lock wait a client may ask for, in seconds. */
export const MAX_WAIT_SECONDS = 24 * 3600;

export interface ClientHello {
  user: string;
  nonce: Buffer;
  /** Seconds the client will wait for another connection of the same user to end (-l). */
  wait: number;
}

export interface Challenge {
  nonce: Buffer;
  /** The client's certificate was verified against the server's client CA. */
  cert: boolean;
}

export type AuthResult = { ok: true; proof?: Buffer } | { ok: false; kind: ErrorKind; error: string };

/** A line that is not what this step of the exchange expects. */
export class AuthSyntaxError extends Error {}

const KINDS: readonly ErrorKind[] = ['usage', 'data', 'notfound', 'exists', 'tempfail', 'permission', 'config', 'nouser'];

function line(value: object): Buffer {
  const out = Buffer.from(`${JSON.stringify(value)}\n`);
  if (out.length > MAX_AUTH_LINE) throw new RangeError(`authentication line of ${out.length} bytes`);
  return out;
}

function parse(raw: Buffer, what: string): Record<string, unknown> {
  if (raw.length > MAX_AUTH_LINE) throw new AuthSyntaxError(`${what}: longer than ${MAX_AUTH_LINE} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new AuthSyntaxError(`${what}: not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AuthSyntaxError(`${what}: not an object`);
  return v as Record<string, unknown>;
}

function hex(value: unknown, bytes: number, what: string): Buffer {
  if (typeof value !== 'string' || value.length !== bytes * 2 || !/^[0-9a-f]+$/.test(value)) {
    throw new AuthSyntaxError(`${what}: expected ${bytes} bytes in lowercase hex`);
  }
  return Buffer.from(value, 'hex');
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export function encodeClientHello(h: ClientHello): Buffer {
  return line({ auth: AUTH_VERSION, user: h.user, nonce: h.nonce.toString('hex'), wait: h.wait });
}

/** The first line of a connection. A version this server does not know is a syntax error naming it. */
export function parseClientHello(raw: Buffer): ClientHello {
  const o = parse(raw, 'authentication request');
  if (o.auth !== AUTH_VERSION) {
    throw new AuthSyntaxError(typeof o.auth === 'number' ? `authentication version ${o.auth} is not supported (this server speaks ${AUTH_VERSION})` : 'not an authentication request');
  }
  if (typeof o.user !== 'string') throw new AuthSyntaxError('authentication request: no user name');
  const wait = o.wait;
  if (typeof wait !== 'number' || !Number.isSafeInteger(wait) || wait < 0) throw new AuthSyntaxError('authentication request: wait is not whole seconds');
  return { user: o.user, nonce: hex(o.nonce, NONCE_BYTES, 'authentication request nonce'), wait: Math.min(wait, MAX_WAIT_SECONDS) };
}

export function encodeChallenge(c: Challenge): Buffer {
  return line({ nonce: c.nonce.toString('hex'), cert: c.cert });
}

export function parseChallenge(raw: Buffer): Challenge {
  const o = parse(raw, 'challenge');
  if (typeof o.cert !== 'boolean') throw new AuthSyntaxError('challenge: no cert field');
  return { nonce: hex(o.nonce, NONCE_BYTES, 'challenge nonce'), cert: o.cert };
}

export function encodeResponse(mac: Buffer | undefined): Buffer {
  return line(mac ? { mac: mac.toString('hex') } : {});
}

/** The client's MAC, or undefined when it sent none. */
export function parseResponse(raw: Buffer): Buffer | undefined {
  const o = parse(raw, 'authentication response');
  return o.mac === undefined ? undefined : hex(o.mac, MAC_BYTES, 'authentication response mac');
}

export function encodeResult(r: AuthResult): Buffer {
  if (r.ok) return line(r.proof ? { ok: true, proof: r.proof.toString('hex') } : { ok: true });
  return line({ ok: false, kind: r.kind, error: r.error.slice(0, 1000) });
}

export function parseResult(raw: Buffer): AuthResult {
  const o = parse(raw, 'authentication result');
  if (o.ok === true) return o.proof === undefined ? { ok: true } : { ok: true, proof: hex(o.proof, MAC_BYTES, 'server proof') };
  if (o.ok !== false || typeof o.error !== 'string') throw new AuthSyntaxError('authentication result: neither ok nor an error');
  // A kind a newer server invented is still a refusal; one to retry.
  const kind = typeof o.kind === 'string' && (KINDS as readonly string[]).includes(o.kind) ? (o.kind as ErrorKind) : 'tempfail';
  // eslint-disable-next-line no-control-regex
  return { ok: false, kind, error: o.error.slice(0, 1000).replace(/[\u0000-\u001f\u007f]+/g, ' ') };
}

export type Role = 'client' | 'server';

export interface Transcript {
  serverNonce: Buffer;
  clientNonce: Buffer;
  user: string;
  /** The TLS channel binding; empty in plaintext. */
  binding: Buffer;
}

/** Every field length-prefixed, so no two transcripts share a byte string. */
function transcriptBytes(role: Role, t: Transcript): Buffer {
  const fields = [Buffer.from(`mailferry-auth-${AUTH_VERSION}`), Buffer.from(role), t.serverNonce, t.clientNonce, Buffer.from(t.user, 'utf8'), t.binding];
  const out: Buffer[] = [];
  for (const f of fields) {
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(f.length, 0);
    out.push(len, f);
  }
  return Buffer.concat(out);
}

export function computeMac(secret: Buffer, role: Role, t: Transcript): Buffer {
  return createHmac('sha256', secret).update(transcriptBytes(role, t)).digest();
}

/** Compares in time independent of where the MACs differ; a missing or short MAC costs the same compare. */
export function macMatches(secret: Buffer, role: Role, t: Transcript, given: Buffer | undefined): boolean {
  const expected = computeMac(secret, role, t);
  const candidate = given !== undefined && given.length === expected.length ? given : Buffer.alloc(expected.length);
  const same = timingSafeEqual(expected, candidate);
  return same && given !== undefined && given.length === expected.length;
}
