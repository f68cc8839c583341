/**
 * A client of `mailferry server` that speaks the authentication by hand, so tests can send what
 * the real client never would: a user name with a NUL, a recorded response, a MAC made for
 * another TLS channel, garbage in place of frames.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { LineReader } from '../../src/remote/auth-lines.js';
import {
  BINDING_BYTES,
  BINDING_LABEL,
  computeMac,
  encodeClientHello,
  encodeResponse,
  MAX_AUTH_LINE,
  newNonce,
  parseChallenge,
  parseResult,
  type AuthResult,
} from '../../src/remote/tcp-auth.js';

export function rawConnect(port: number, opts: { ca?: string; localAddress?: string; cert?: string; key?: string } = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock: Socket | TLSSocket =
      opts.ca !== undefined
        ? tlsConnect({
            host: '127.0.0.1',
            port,
            ca: readFileSync(opts.ca),
            ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
            ...(opts.cert ? { cert: readFileSync(opts.cert), key: readFileSync(opts.key!) } : {}),
          })
        : netConnect({ host: '127.0.0.1', port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    sock.once(opts.ca !== undefined ? 'secureConnect' : 'connect', () => resolve(sock));
    sock.once('error', reject);
  });
}

export function bindingOf(sock: Socket): Buffer {
  return 'exportKeyingMaterial' in sock ? (sock as TLSSocket).exportKeyingMaterial(BINDING_BYTES, BINDING_LABEL, Buffer.alloc(0)) : Buffer.alloc(0);
}

export interface Exchange {
  /** The bytes the client sent, in order. */
  sent: Buffer[];
  serverNonce?: Buffer;
  result: AuthResult;
  reader: LineReader;
}

/**
 * Authenticates as `user` with `secret` (none: an empty response). `binding` replaces the
 * connection's own channel binding in the MAC (a relayed response).
 */
export async function authenticate(sock: Socket, user: string, secret: Buffer | undefined, opts: { binding?: Buffer; wait?: number } = {}): Promise<Exchange> {
  const reader = new LineReader(sock, MAX_AUTH_LINE);
  const clientNonce = newNonce();
  const hello = encodeClientHello({ user, nonce: clientNonce, wait: opts.wait ?? 5 });
  sock.write(hello);
  const first = await reader.next(10_000);
  let challenge;
  try {
    challenge = parseChallenge(first);
  } catch {
    return { sent: [hello], result: parseResult(first), reader };
  }
  const transcript = { serverNonce: challenge.nonce, clientNonce, user, binding: opts.binding ?? bindingOf(sock) };
  const response = encodeResponse(secret ? computeMac(secret, 'client', transcript) : undefined);
  sock.write(response);
  const result = parseResult(await reader.next(20_000));
  return { sent: [hello, response], serverNonce: challenge.nonce, result, reader };
}
