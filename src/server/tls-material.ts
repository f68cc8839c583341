/**
 * The server's TLS material, read from its files at start and again on SIGHUP: a new
 * certificate or client CA applies to the connections that come after; a reload that fails
 * keeps the material in use and says why.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import { MailferryError } from '../model/errors.js';
import { readSiteFile } from '../remote/site-file.js';

export interface TlsFiles {
  cert: string;
  key: string;
  clientCa?: string;
}

export interface TlsMaterial {
  context: SecureContext;
  /** Client certificates are asked for and, when they chain to this CA, authenticate. */
  clientCa: boolean;
}

export function loadTls(files: TlsFiles): TlsMaterial {
  const cert = readSiteFile(files.cert, 'TLS certificate');
  const key = readSiteFile(files.key, 'TLS key');
  const ca = files.clientCa !== undefined ? readSiteFile(files.clientCa, 'client CA') : undefined;
  try {
    return { context: createSecureContext({ cert, key, ...(ca ? { ca } : {}), minVersion: 'TLSv1.2' }), clientCa: ca !== undefined };
  } catch (err) {
    throw new MailferryError('config', `TLS certificate ${files.cert} and key ${files.key}${ca ? ` or client CA ${files.clientCa}` : ''}: ${(err as Error).message}`);
  }
}
