/**
 * `mailferry server`'s listeners and shared state: the connection table, the back-off, the
 * per-user turns, the TLS material and the secret (both reread on SIGHUP), and the running
 * sessions, which a shutdown lets finish (drain) or stops.
 */
import { setMaxListeners } from 'node:events';
import { createServer, type Server } from 'node:net';
import type { Settings } from '../config/settings.js';
import { fsError, MailferryError, tempError } from '../model/errors.js';
import { readSecretFile } from '../remote/site-file.js';
import { Accounts } from './accounts.js';
import { AuthBackoff } from './auth-backoff.js';
import { ConnectionTable } from './connection-table.js';
import { handleConnection, type ServerContext } from './connection.js';
import type { Log } from './server-log.js';
import { forkSessionWorker, type SessionProcess } from './session-process.js';
import { SpareWorker } from './spare-worker.js';
import { TlsAcceptor, type TlsFiles } from './tls-material.js';
import { UserLocks } from './user-locks.js';

export interface ListenAddress {
  /** `*`: every address, IPv6 and IPv4. */
  host: string;
  port: number;
}

export interface ServerConfig {
  listen: ListenAddress[];
  tls?: TlsFiles;
  secretFile?: string;
  allowPlaintext: boolean;
  /** LOCATION-TEMPLATE: the mail of users the userdb gives none. */
  template?: string;
  settings: Settings;
}

/** How often the status line is logged when something changed. */
const STATUS_EVERY_MS = 10 * 60_000;

function listenError(err: NodeJS.ErrnoException, where: string): MailferryError {
  if (err.code === 'EADDRINUSE') return new MailferryError('tempfail', `cannot listen on ${where}: the address is in use`);
  if (err.code === 'EADDRNOTAVAIL') return new MailferryError('config', `cannot listen on ${where}: no such address on this host`);
  return fsError(err, `listen on ${where}`);
}

function listenOn(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: false }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export class MailServer {
  private readonly servers: Server[] = [];
  private readonly active = new Set<Promise<void>>();
  private readonly sessions = new Set<SessionProcess>();
  private readonly stopping = new AbortController();
  private readonly table: ConnectionTable;
  private readonly backoff: AuthBackoff;
  private readonly locks = new UserLocks();
  private readonly spares = new SpareWorker(forkSessionWorker);
  private tlsAcceptor?: TlsAcceptor;
  private secret?: Buffer;
  private lastId = 0;
  private statusTimer?: NodeJS.Timeout;
  private lastStatus = '';
  /** Where it listens, as bound (a port 0 resolved). */
  readonly addresses: string[] = [];

  private constructor(
    private readonly config: ServerConfig,
    private readonly accounts: Accounts,
    private readonly log: Log,
  ) {
    const s = config.settings;
    // Every connection listens for the shutdown.
    setMaxListeners(0, this.stopping.signal);
    this.table = new ConnectionTable({ maxConnections: s.server_max_connections, maxPerAddress: s.server_max_connections_per_address });
    this.backoff = new AuthBackoff({ threshold: s.server_auth_failures, maxSeconds: s.server_auth_backoff });
  }

  static async start(config: ServerConfig, log: Log): Promise<MailServer> {
    const tls = config.tls ? new TlsAcceptor(config.tls) : undefined;
    const secret = config.secretFile !== undefined ? readSecretFile(config.secretFile) : undefined;
    if (!secret && !tls?.clientCa) {
      throw new MailferryError('config', 'no client could authenticate: give a shared secret (--secret-file or server_secret_file) or a client CA (--client-ca)');
    }
    const accounts = await Accounts.open(config.settings, config.template);
    const server = new MailServer(config, accounts, log);
    server.tlsAcceptor = tls;
    server.secret = secret;
    try {
      for (const l of config.listen) await server.listenOn(l);
    } catch (err) {
      await server.close();
      throw err;
    }
    const kinds = [tls ? 'TLS' : undefined, config.allowPlaintext ? 'plaintext' : undefined].filter(Boolean).join(' and ');
    const auth = [secret ? 'shared secret' : undefined, tls?.clientCa ? 'client certificate' : undefined].filter(Boolean).join(' or ');
    log(`listening on ${server.addresses.join(', ')} (${kinds}; authentication by ${auth}; users from ${accounts.description}) pid=${process.pid}`);
    // Once the caller has its signal handlers in place: forking takes a while, and a SIGHUP
    // sent as soon as the line above is read must not find the default action.
    setImmediate(() => server.spares.prepare());
    server.statusTimer = setInterval(() => server.logStatus(false), STATUS_EVERY_MS);
    server.statusTimer.unref();
    return server;
  }

  private async listenOn(l: ListenAddress): Promise<void> {
    const server = createServer({ noDelay: true }, (sock) => this.accept(sock));
    server.on('error', (err) => this.log(`listener error: ${err.message}`));
    const shown = (h: string) => (h.includes(':') ? `[${h}]` : h);
    try {
      if (l.host === '*') {
        // Dual-stack where the host has IPv6, else IPv4 alone.
        try {
          await listenOn(server, '::', l.port);
        } catch (err) {
          if (!['EAFNOSUPPORT', 'EADDRNOTAVAIL'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
          await listenOn(server, '0.0.0.0', l.port);
        }
      } else {
        await listenOn(server, l.host, l.port);
      }
    } catch (err) {
      throw listenError(err as NodeJS.ErrnoException, `${shown(l.host)}:${l.port}`);
    }
    this.servers.push(server);
    const a = server.address();
    if (a && typeof a === 'object') this.addresses.push(`${l.host === '*' ? '*' : shown(a.address)}:${a.port}`);
  }

  private context(): ServerContext {
    return {
      settings: this.config.settings,
      tls: () => this.tlsAcceptor,
      secret: () => this.secret,
      allowPlaintext: this.config.allowPlaintext,
      compress: this.config.settings.dsync_compression !== 'none',
      table: this.table,
      backoff: this.backoff,
      locks: this.locks,
      accounts: this.accounts,
      log: this.log,
      nextId: () => ++this.lastId,
      shutdown: this.stopping.signal,
      sessions: this.sessions,
      worker: () => this.spares.take(),
    };
  }

  private accept(sock: import('node:net').Socket): void {
    if (this.stopping.signal.aborted) {
      sock.destroy();
      return;
    }
    const task = handleConnection(sock, this.context()).catch((err: unknown) => {
      // A connection's failure is its own; the server goes on.
      this.log(`internal error in a connection: ${(err as Error)?.stack ?? String(err)}`);
      sock.destroy();
    });
    this.active.add(task);
    void task.finally(() => {
      this.active.delete(task);
      // The next session's process starts now, while no client waits for it.
      if (!this.stopping.signal.aborted) this.spares.prepare();
    });
  }

  /** SIGHUP: the certificate, key, client CA and secret are read again; on any error the old ones stay. */
  reload(): void {
    const done: string[] = [];
    try {
      // Everything is read before anything is replaced: a failure changes nothing.
      const secret = this.config.secretFile !== undefined ? readSecretFile(this.config.secretFile) : undefined;
      if (this.tlsAcceptor) {
        this.tlsAcceptor.reload();
        done.push('TLS certificate');
      }
      if (secret) {
        this.secret = secret;
        done.push('secret');
      }
      this.log(`reloaded: ${done.join(', ') || 'nothing to reload'}`);
    } catch (err) {
      this.log(`reload failed, still using the previous ${this.config.tls ? 'certificate and ' : ''}secret: ${err instanceof MailferryError ? err.message : String(err)}`);
    }
    this.logStatus(true);
  }

  status(): string {
    return [
      `connections=${this.table.size}`,
      `unauthenticated=${this.table.unauthenticated}`,
      `sessions=${this.sessions.size}`,
      `users_busy=${this.locks.busy}`,
      `auth_failures_total=${this.backoff.totalFailures}`,
      `slowed_addresses=${this.backoff.slowedAddresses}`,
      `dropped_for_room=${this.table.evicted}`,
    ].join(' ');
  }

  logStatus(always: boolean): void {
    const s = this.status();
    if (always || s !== this.lastStatus) this.log(`status: ${s}`);
    this.lastStatus = s;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Stops listening, turns away whoever has not authenticated, and waits for the sessions to end. */
  async drain(): Promise<void> {
    this.stopping.abort(tempError('the server is shutting down; try again later'));
    this.spares.close();
    // The connections this server handles are its own to wait for, not the listeners' count.
    for (const s of this.servers) s.close();
    const progress = setInterval(() => this.log(`draining: ${this.active.size} connection(s), ${this.sessions.size} session(s) still open`), 10_000);
    try {
      while (this.active.size > 0) await Promise.allSettled([...this.active]);
    } finally {
      clearInterval(progress);
    }
  }

  /** Stops every session now (a second SIGTERM): their stores are safe to interrupt. */
  stopSessions(): void {
    for (const s of this.sessions) s.stop('the server was told to stop at once');
  }

  async close(): Promise<void> {
    clearInterval(this.statusTimer);
    this.stopping.abort(tempError('the server is shutting down; try again later'));
    this.spares.close();
    for (const s of this.servers) s.close();
    await this.accounts.close();
  }
}
