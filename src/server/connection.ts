/**
 * One client connection, from accept to its log line: admission under the limits, TLS (told
 * from plaintext by the first byte), the back-off of an address that keeps failing, the
 * challenge-response, the user name, the account, the user's turn, and then the session.
 * Until it has authenticated a peer gets nothing but the challenge and one error line, and the
 * whole exchange runs under server_auth_timeout.
 */
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { TLSSocket } from 'node:tls';
import type { Settings } from '../config/settings.js';
import { MailferryError, type ErrorKind } from '../model/errors.js';
import { LineError, LineReader } from '../remote/auth-lines.js';
import {
  AuthSyntaxError,
  BINDING_BYTES,
  BINDING_LABEL,
  computeMac,
  encodeChallenge,
  encodeResult,
  macMatches,
  MAX_AUTH_LINE,
  newNonce,
  parseClientHello,
  parseResponse,
} from '../remote/tcp-auth.js';
import type { Accounts } from './accounts.js';
import type { AuthBackoff } from './auth-backoff.js';
import type { ConnectionTable, Tracked } from './connection-table.js';
import { addressKey } from './peer-address.js';
import { connectionLine, type ConnectionRecord, type Log } from './server-log.js';
import { SessionProcess } from './session-process.js';
import type { TlsAcceptor } from './tls-material.js';
import { shownUserName, userNameProblem } from './user-name.js';
import type { UserLocks } from './user-locks.js';

export interface ServerContext {
  settings: Settings;
  tls(): TlsAcceptor | undefined;
  secret(): Buffer | undefined;
  allowPlaintext: boolean;
  compress: boolean;
  table: ConnectionTable;
  backoff: AuthBackoff;
  locks: UserLocks;
  accounts: Accounts;
  log: Log;
  nextId(): number;
  /** Aborted when the server shuts down: waits end, and no new session starts. */
  shutdown: AbortSignal;
  sessions: Set<SessionProcess>;
  /** A started session process (a spare when one waits). */
  worker(): ChildProcess;
}

/** Ends the exchange with one error line (the peer reads it as its reason). */
class Refusal extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly clientText: string,
    /** What the log says; the client's text when undefined. */
    readonly logText?: string,
  ) {
    super(clientText);
  }
}

function firstByte(sock: Socket): Promise<number | undefined> {
  return new Promise((resolve) => {
    const done = (b: number | undefined) => {
      sock.off('readable', onReadable);
      sock.off('close', onClose);
      resolve(b);
    };
    const onReadable = () => {
      const chunk = sock.read(1) as Buffer | null;
      if (chunk === null) return;
      sock.unshift(chunk);
      done(chunk[0]);
    };
    const onClose = () => done(undefined);
    sock.on('readable', onReadable);
    sock.on('close', onClose);
  });
}

/**
 * Says one last line and closes. What the peer sent meanwhile is read and dropped until it
 * closes too (or 2 seconds pass): closing with unread input is a reset, which can destroy the
 * line before the peer has read it.
 */
function writeAndEnd(sock: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 2000);
    sock.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    sock.on('data', () => {});
    sock.resume();
    sock.end(data);
  });
}

function certName(sock: TLSSocket): string {
  const subject = sock.getPeerCertificate()?.subject as Record<string, string | string[]> | undefined;
  const cn = subject?.CN;
  return `cert CN=${Array.isArray(cn) ? cn.join(',') : (cn ?? '?')}`;
}

export async function handleConnection(raw: Socket, ctx: ServerContext): Promise<void> {
  const rec: ConnectionRecord = { id: ctx.nextId(), peer: `${raw.remoteAddress ?? '?'}:${raw.remotePort ?? '?'}`, started: Date.now() };
  const key = addressKey(raw.remoteAddress);
  let sock: Socket = raw;
  raw.on('error', () => {});
  const tracked: Tracked = {
    key,
    authenticated: false,
    drop: (reason) => {
      rec.result ??= `dropped: ${reason}`;
      sock.destroy();
      raw.destroy();
    },
  };
  const admitted = ctx.table.admit(tracked);
  if (!admitted.ok) {
    rec.result = `refused: ${admitted.reason}`;
    raw.destroy();
    ctx.log(connectionLine(rec));
    return;
  }
  const authSeconds = ctx.settings.server_auth_timeout;
  let authTimer: NodeJS.Timeout | undefined;
  const startAuthClock = () => {
    authTimer = setTimeout(() => tracked.drop(`no authentication within ${authSeconds} seconds (server_auth_timeout)`), authSeconds * 1000);
  };
  const closed = new AbortController();
  raw.once('close', () => closed.abort());
  const onShutdown = () => {
    if (!tracked.authenticated) tracked.drop('the server is shutting down');
  };
  ctx.shutdown.addEventListener('abort', onShutdown);
  let reader: LineReader | undefined;
  let session: SessionProcess | undefined;
  try {
    startAuthClock();
    const first = await firstByte(raw);
    if (first === undefined) throw new Refusal('tempfail', '', 'closed before saying anything');
    const material = ctx.tls();
    if (first === 0x16) {
      if (!material) {
        // Written in plaintext, the client's TLS library reads it as "not TLS", which is right.
        await writeAndEnd(raw, encodeResult({ ok: false, kind: 'config', error: 'this server speaks plaintext only: use tcp:' }));
        throw new Refusal('config', '', 'TLS, to a plaintext-only server');
      }
      let tls: TLSSocket;
      try {
        tls = await material.accept(raw);
      } catch (err) {
        throw new Refusal('config', '', `TLS handshake failed: ${(err as Error).message.split('\n')[0]}`);
      }
      sock = tls;
      tls.on('error', () => {});
      rec.tls = tls.getProtocol() ?? 'TLS';
    } else {
      rec.tls = 'none';
      if (!ctx.allowPlaintext) {
        await writeAndEnd(raw, encodeResult({ ok: false, kind: 'config', error: 'this server speaks TLS only: use tcps:' }));
        throw new Refusal('config', '', 'plaintext, to a TLS-only server');
      }
    }
    // An address that keeps failing waits before it may try again; the wait does not count
    // against the time to authenticate, and holds one of the address's few connections.
    const delay = ctx.backoff.delayFor(key);
    if (delay > 0) {
      rec.backoff = delay;
      clearTimeout(authTimer);
      try {
        await sleep(delay, undefined, { signal: AbortSignal.any([closed.signal, ctx.shutdown]) });
      } catch {
        throw new Refusal('tempfail', '', `closed during the ${delay / 1000} second back-off`);
      }
      startAuthClock();
    }
    reader = new LineReader(sock, MAX_AUTH_LINE);
    const limit = authSeconds * 1000;
    const failAuth = (why: string, kind: ErrorKind = 'permission', clientText = 'authentication failed'): Refusal => {
      const address = ctx.backoff.failed(key);
      rec.failures = { address, total: ctx.backoff.totalFailures };
      return new Refusal(kind, clientText, `authentication failed: ${why}`);
    };
    let hello;
    try {
      hello = parseClientHello(await reader.next(limit));
    } catch (err) {
      // A client of another version is told so; anything else learns nothing.
      if (err instanceof AuthSyntaxError && /not supported/.test(err.message)) throw failAuth(err.message, 'config', err.message);
      if (err instanceof AuthSyntaxError) throw failAuth(err.message);
      throw err;
    }
    rec.user = hello.user;
    const serverNonce = newNonce();
    const certOk = sock instanceof TLSSocket && material?.clientCa === true && sock.authorized;
    sock.write(encodeChallenge({ nonce: serverNonce, cert: certOk }));
    let mac: Buffer | undefined;
    try {
      mac = parseResponse(await reader.next(limit));
    } catch (err) {
      if (err instanceof AuthSyntaxError) throw failAuth(err.message);
      throw err;
    }
    const binding = sock instanceof TLSSocket ? sock.exportKeyingMaterial(BINDING_BYTES, BINDING_LABEL, Buffer.alloc(0)) : Buffer.alloc(0);
    const transcript = { serverNonce, clientNonce: hello.nonce, user: hello.user, binding };
    const secret = ctx.secret();
    const secretOk = secret !== undefined && macMatches(secret, 'client', transcript, mac);
    if (!secretOk && !certOk) {
      const why = mac === undefined ? 'the client gave no secret' + (material?.clientCa ? ' and no valid certificate' : '') : 'wrong secret';
      throw failAuth(why);
    }
    ctx.backoff.succeeded(key);
    clearTimeout(authTimer);
    authTimer = undefined;
    tracked.authenticated = true;
    rec.auth = secretOk ? 'secret' : certName(sock as TLSSocket);

    const problem = userNameProblem(hello.user);
    if (problem) throw new Refusal('data', `user name ${shownUserName(hello.user)} ${problem}: refused`);
    const account = await ctx.accounts.resolve(hello.user);
    if (ctx.shutdown.aborted) throw new Refusal('tempfail', 'the server is shutting down; try again later');
    const waitStart = Date.now();
    const release = await ctx.locks.acquire(account.location, hello.wait * 1000, AbortSignal.any([closed.signal, ctx.shutdown]), `user ${shownUserName(account.user)}`);
    rec.waited = Date.now() - waitStart;
    try {
      session = new SessionProcess(
        { type: 'serve', account, settings: ctx.settings, label: `client ${rec.peer} (user ${shownUserName(account.user)})`, compress: ctx.compress },
        (line) => ctx.log(`session ${rec.id}: ${line}`),
        ctx.worker(),
      );
      ctx.sessions.add(session);
      await session.ready;
      if (raw.destroyed) throw new Refusal('tempfail', '', 'the client left before its session started');
      sock.write(encodeResult({ ok: true, ...(secretOk ? { proof: computeMac(secret!, 'server', transcript) } : {}) }));
      const outcome = await session.run(sock, reader.detach(), {
        idleMs: ctx.settings.server_idle_timeout * 1000,
        maxMs: ctx.settings.server_session_max_time * 1000,
      });
      rec.exit = outcome.exitCode ?? undefined;
      rec.counts = outcome.counts;
      rec.bytesIn = outcome.bytesIn;
      rec.bytesOut = outcome.bytesOut;
      rec.result =
        outcome.endedBy !== undefined ? `ended: ${outcome.endedBy}` :
        outcome.signal !== null ? `failed: the session process was killed by ${outcome.signal}` :
        outcome.exitCode !== 0 ? `failed: ${outcome.error ?? `exit ${outcome.exitCode}`}` : 'ok';
    } finally {
      release();
    }
  } catch (err) {
    const refusal =
      err instanceof Refusal ? err :
      err instanceof MailferryError ? new Refusal(err.kind, err.message) :
      err instanceof LineError ? new Refusal('tempfail', '', err.reason === 'too-long' ? `authentication: ${err.message}` : `authentication: ${err.message}`) :
      new Refusal('tempfail', 'internal error', `internal error: ${(err as Error)?.stack ?? String(err)}`);
    rec.result ??= `refused: ${refusal.logText ?? refusal.clientText}`;
    session?.stop('refused before it started');
    if (refusal.clientText !== '' && !sock.destroyed && sock.writable) {
      await writeAndEnd(sock, encodeResult({ ok: false, kind: refusal.kind, error: refusal.clientText }));
    }
  } finally {
    clearTimeout(authTimer);
    reader?.detach();
    ctx.shutdown.removeEventListener('abort', onShutdown);
    if (session) ctx.sessions.delete(session);
    ctx.table.release(tracked);
    sock.destroy();
    raw.destroy();
    ctx.log(connectionLine(rec));
  }
}
