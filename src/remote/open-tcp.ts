/**
 * Opens a `tcp:` or `tcps:` location: connects to the `mailferry server` there, authenticates
 * as the run's user, and speaks the protocol over the socket; the server opens that user's
 * store and takes its run lock, as dsync-server does at the end of an ssh connection.
 */
import { userInfo } from 'node:os';
import { MailferryError } from '../model/errors.js';
import type { MailStore } from '../storage/store.js';
import { openRawlogFile } from './rawlog-file.js';
import { RemoteStore } from './remote-store.js';
import { MIN_SECRET_BYTES, readSecretFile } from './site-file.js';
import { parseTcpLocation, tcpPeerName } from './tcp-location.js';
import { connectTcp } from './tcp-transport.js';

export interface TcpOpenOptions {
  /** server_port: the port when the location names none. */
  port: number;
  /** server_secret_file; else MAILFERRY_SECRET. */
  secretFile?: string;
  /** The user of a run over users; the location's USER@ wins. */
  user?: string;
  compress?: boolean;
  create?: boolean;
  force?: boolean;
  lockTimeoutSeconds?: number;
  ioTimeoutSeconds?: number;
  rawlogFile?: string;
}

/** The secret from server_secret_file, else MAILFERRY_SECRET, else none (a client certificate may do). */
export function clientSecret(secretFile: string | undefined): Buffer | undefined {
  if (secretFile !== undefined) return readSecretFile(secretFile, 'server_secret_file');
  const env = process.env.MAILFERRY_SECRET;
  if (env === undefined || env === '') return undefined;
  const secret = Buffer.from(env, 'utf8');
  if (secret.length < MIN_SECRET_BYTES) throw new MailferryError('config', `MAILFERRY_SECRET is only ${secret.length} bytes; the secret needs at least ${MIN_SECRET_BYTES}`);
  return secret;
}

export async function openTcpStore(raw: string, options: TcpOpenOptions): Promise<MailStore> {
  const loc = parseTcpLocation(raw);
  const user = loc.user ?? options.user ?? userInfo().username;
  const label = `server ${tcpPeerName(loc, options.port)}`;
  const secret = clientSecret(options.secretFile);
  const lockSeconds = options.lockTimeoutSeconds ?? 30;
  const timeoutMs = (options.ioTimeoutSeconds ?? 600) * 1000;
  const sock = await connectTcp(loc, { port: loc.port ?? options.port, user, secret, lockSeconds, timeoutMs, label });
  const rawlog = options.rawlogFile !== undefined ? openRawlogFile(options.rawlogFile) : undefined;
  try {
    const connecting = RemoteStore.connect(sock, {
      label,
      location: raw,
      open: { create: options.create ?? false, force: options.force ?? false, lockSeconds, runLock: true },
      compress: options.compress ?? true,
      timeoutMs,
      rawlog: rawlog?.write,
      onClosed: async () => {
        sock.destroy();
        rawlog?.close();
      },
    });
    // The socket comes paused, holding whatever followed the authentication (the server's
    // hello may have come with it); connect() has attached its reader by now, synchronously.
    sock.resume();
    return await connecting;
  } catch (err) {
    sock.destroy();
    rawlog?.close();
    throw err;
  }
}
