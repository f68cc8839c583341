/**
 * The server's TLS side: certificate, key and client CA read from their files at start and again
 * on SIGHUP (a new one applies to the connections after it; a reload that fails keeps the one in
 * use), and the handshake of each connection the server decided is TLS. The handshake runs in a
 * non-listening tls.Server the connection is handed to, because only a server's sockets learn
 * whether a client certificate checked out against the CA.
 */
import type { Socket } from 'node:net';
import { createSecureContext, createServer, type Server, type TLSSocket } from 'node:tls';
import { MailferryError } from '../model/errors.js';
import { readSiteFile } from '../remote/site-file.js';

export interface TlsFiles {
  cert: string;
  key: string;
  clientCa?: string;
}

interface Material {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

function loadMaterial(files: TlsFiles): Material {
  const m: Material = {
    cert: readSiteFile(files.cert, 'TLS certificate'),
    key: readSiteFile(files.key, 'TLS key'),
    ...(files.clientCa !== undefined ? { ca: readSiteFile(files.clientCa, 'client CA') } : {}),
  };
  try {
    // Built once here so a mismatched key or a broken file is refused with the files named.
    createSecureContext({ ...m, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new MailferryError('config', `TLS certificate ${files.cert} and key ${files.key}${m.ca ? ` or client CA ${files.clientCa}` : ''}: ${(err as Error).message}`);
  }
  return m;
}

function keyOf(s: Socket): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}

export class TlsAcceptor {
  private readonly server: Server;
  private readonly pending = new Map<string, { resolve(s: TLSSocket): void; reject(e: Error): void }>();
  /** Client certificates are asked for and, when they chain to the client CA, authenticate. */
  readonly clientCa: boolean;

  constructor(private readonly files: TlsFiles) {
    const m = loadMaterial(files);
    this.clientCa = m.ca !== undefined;
    // The connection's own timer (server_auth_timeout) bounds the handshake.
    this.server = createServer({ ...m, minVersion: 'TLSv1.2', requestCert: this.clientCa, rejectUnauthorized: false, handshakeTimeout: 0 });
    this.server.on('secureConnection', (s: TLSSocket) => this.settle(s, undefined));
    this.server.on('tlsClientError', (err: Error, s: TLSSocket) => this.settle(s, err));
  }

  private settle(s: TLSSocket, err: Error | undefined): void {
    const key = keyOf(s);
    const p = this.pending.get(key);
    if (!p) {
      s.destroy();
      return;
    }
    this.pending.delete(key);
    if (err) p.reject(err);
    else p.resolve(s);
  }

  /** SIGHUP: the files again; throws (and keeps the material in use) when they do not make a pair. */
  reload(): void {
    const m = loadMaterial(this.files);
    if ((m.ca !== undefined) !== this.clientCa) throw new MailferryError('config', 'a client CA can be changed on SIGHUP, but not added or removed: restart the server for that');
    this.server.setSecureContext({ ...m, minVersion: 'TLSv1.2' });
  }

  /** The handshake of `raw`; rejects when it fails or the connection closes first. */
  accept(raw: Socket): Promise<TLSSocket> {
    const key = keyOf(raw);
    return new Promise<TLSSocket>((resolve, reject) => {
      const onClose = () => {
        if (this.pending.get(key)?.reject === fail) this.pending.delete(key);
        reject(new Error('closed during the TLS handshake'));
      };
      const fail = (e: Error) => {
        raw.off('close', onClose);
        reject(e);
      };
      this.pending.set(key, {
        resolve: (s) => {
          raw.off('close', onClose);
          resolve(s);
        },
        reject: fail,
      });
      raw.once('close', onClose);
      this.server.emit('connection', raw);
    });
  }
}
