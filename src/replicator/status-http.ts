/**
 * `replicator --http HOST:PORT`: the status page (`/`), the same as JSON (`/status.json`) and
 * Prometheus metrics (`/metrics`), on node's http server. GET and HEAD only; anything else is
 * 405, an unknown path 404. Nothing here authenticates: the page names every user, so it
 * listens on a loopback address unless the administrator says otherwise (allowRemote).
 * Bounded: connections, header size and time, URL and search length, and requests worked on at
 * once (each reads the whole queue); a request past those is refused, never queued. On loopback
 * a request must name the server by an address or `localhost`: a web page whose name was made to
 * resolve to 127.0.0.1 (DNS rebinding) could otherwise read the page from a browser on the host.
 *
 * It listens before the daemon starts (a port that cannot be had stops the start, not a running
 * daemon) and answers 503 until `attach` hands it the daemon.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { MailferryError } from '../model/errors.js';
import { isLoopback } from '../server/peer-address.js';
import type { ControlReply } from './control-protocol.js';
import type { ReplicationPriority } from './replication-priority.js';
import { ReplicatorMetrics, type StatusSource } from './replicator-metrics.js';
import { SyncHistory } from './status-history.js';
import { parseHttpAddress, type HttpAddress } from './status-http-address.js';
import { PAGE_CSP, pageView, renderPage } from './status-page.js';
import { MAX_QUERY, takeSnapshot } from './status-snapshot.js';
import type { SyncReport } from './sync-report.js';

/** What the server needs of the daemon: its answers and its events. */
export interface ObservedDaemon extends StatusSource {
  on(event: 'synced', listener: (r: SyncReport) => void): unknown;
  on(event: 'hint', listener: (user: string, priority: ReplicationPriority) => void): unknown;
  off(event: 'synced', listener: (r: SyncReport) => void): unknown;
  off(event: 'hint', listener: (user: string, priority: ReplicationPriority) => void): unknown;
}

export interface StatusHttpOptions {
  address: HttpAddress;
  /** Where the address came from, for errors: `--http` or `replication_http`. */
  origin: string;
  allowRemote: boolean;
  log(line: string): void;
  /** prom-client's process metrics (CPU, memory, event loop); on by default. */
  processMetrics?: boolean;
}

const MAX_CONNECTIONS = 64;
const MAX_WORKING = 8;
const MAX_URL = 2048;
const ANSWER_TTL_MS = 500;

/** A Host header naming an address or localhost, not a name some DNS could point here. */
function isLocalName(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = (host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '')).toLowerCase();
  return isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost');
}

/** What a failure to listen means, as an exit status: a port in use may be free later, a refused one will not. */
function listenError(err: NodeJS.ErrnoException, where: string, origin: string): MailferryError {
  const what = `${origin} ${where}: cannot listen`;
  if (err.code === 'EADDRINUSE') return new MailferryError('tempfail', `${what}: the address is in use`);
  if (err.code === 'EACCES' || err.code === 'EPERM') return new MailferryError('permission', `${what}: permission denied`);
  const kind = origin.startsWith('--') ? 'usage' : 'config';
  return new MailferryError(kind, `${what}: ${err.code === 'EADDRNOTAVAIL' ? 'no such address on this host' : err.code === 'ENOTFOUND' ? 'no such host' : err.message}`);
}

export class StatusHttpServer {
  private daemon: ObservedDaemon | undefined;
  private readonly history = new SyncHistory();
  private readonly metrics: ReplicatorMetrics;
  private working = 0;
  /**
   * The daemon's answers, shared by the requests that come within ANSWER_TTL_MS of each other:
   * each reads the whole queue, and a dozen open pages refreshing, or several scrapers, would
   * otherwise read it a dozen times over.
   */
  private readonly answers = new Map<string, { at: number; reply: Promise<ControlReply> }>();
  private readonly source: StatusSource = {
    answer: (r) => {
      if (this.daemon === undefined) return Promise.reject(new Error('the replicator is starting'));
      const key = JSON.stringify(r);
      const now = Date.now();
      const had = this.answers.get(key);
      if (had !== undefined && now - had.at < ANSWER_TTL_MS) return had.reply;
      const reply = this.daemon.answer(r);
      this.answers.set(key, { at: now, reply });
      // A failure is not kept: the next request asks again.
      reply.catch(() => this.answers.get(key)?.reply === reply && this.answers.delete(key));
      return reply;
    },
  };
  private readonly onSynced = (r: SyncReport) => {
    this.history.record(r);
    this.metrics.synced(r);
  };
  private readonly onHint = (_user: string, priority: ReplicationPriority) => this.metrics.hint(priority);

  private constructor(
    private readonly server: Server,
    private readonly anyHost: boolean,
    /** `127.0.0.1:9180`, `[::1]:9180`: the address bound, the port chosen when 0 was asked for. */
    readonly address: string,
    processMetrics: boolean,
  ) {
    this.metrics = new ReplicatorMetrics(this.source, { processMetrics });
    server.on('request', (req, res) => void this.handle(req, res));
  }

  get url(): string {
    return `http://${this.address}/`;
  }

  static async listen(opts: StatusHttpOptions): Promise<StatusHttpServer> {
    const { host, port } = opts.address;
    const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    const server = createServer({ maxHeaderSize: 8192, requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000 });
    server.maxConnections = MAX_CONNECTIONS;
    server.maxRequestsPerSocket = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, where, opts.origin)));
      server.listen({ host, port, exclusive: true }, () => resolve());
    });
    const bound = server.address() as AddressInfo;
    if (!opts.allowRemote && !isLoopback(bound.address)) {
      await new Promise((r) => server.close(r));
      throw new MailferryError(
        opts.origin.startsWith('--') ? 'usage' : 'config',
        `${opts.origin} ${where}: ${bound.address} is not a loopback address, and the status page has no authentication (it names every user): give --http-allow-remote to serve it there anyway, behind a firewall or an authenticating proxy`,
      );
    }
    // Errors after the start (EMFILE on accept) are logged, never the end of the daemon.
    server.on('error', (err) => opts.log(`status page: ${err.message}`));
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    const address = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
    const s = new StatusHttpServer(server, opts.allowRemote, address, opts.processMetrics !== false);
    opts.log(`status page on ${s.url}, Prometheus metrics on ${s.url}metrics (no authentication${isLoopback(bound.address) ? '' : '; not a loopback address'})`);
    return s;
  }

  /** Requests being worked on now. */
  get inProgress(): number {
    return this.working;
  }

  /** From now on the page shows this daemon and the metrics follow its syncs and hints. */
  attach(daemon: ObservedDaemon): void {
    this.detach();
    this.answers.clear();
    this.daemon = daemon;
    daemon.on('synced', this.onSynced);
    daemon.on('hint', this.onHint);
  }

  private detach(): void {
    this.daemon?.off('synced', this.onSynced);
    this.daemon?.off('hint', this.onHint);
    this.daemon = undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    const send = (status: number, type: string, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const plain = 'text/plain; charset=utf-8';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      // A body that is never read would hold the connection: it closes after the answer.
      send(405, plain, 'only GET and HEAD\n', { Allow: 'GET, HEAD', Connection: 'close' });
      return;
    }
    if (!this.anyHost && !isLocalName(req.headers.host)) {
      send(403, plain, 'the status page answers to its address or localhost only\n', { Connection: 'close' });
      return;
    }
    const raw = req.url ?? '/';
    if (raw.length > MAX_URL) {
      send(414, plain, 'URL too long\n');
      return;
    }
    let url: URL;
    try {
      url = new URL(raw, 'http://status.invalid');
    } catch {
      send(400, plain, 'bad URL\n');
      return;
    }
    const route = url.pathname;
    if (route !== '/' && route !== '/status.json' && route !== '/metrics') {
      send(404, plain, `no such page: the replicator serves /, /status.json and /metrics\n`);
      return;
    }
    const query = url.searchParams.get('q') ?? '';
    // eslint-disable-next-line no-control-regex
    if (query.length > MAX_QUERY || /[\0-\x1f\x7f]/.test(query)) {
      send(400, plain, `a search is at most ${MAX_QUERY} characters, without control characters\n`);
      return;
    }
    if (this.working >= MAX_WORKING) {
      send(503, plain, 'busy: try again\n', { 'Retry-After': '1' });
      return;
    }
    this.working++;
    try {
      if (route === '/metrics') {
        send(200, this.metrics.contentType, await this.metrics.text());
        return;
      }
      const snapshot = await takeSnapshot(this.source, this.history, query);
      if (route === '/status.json') send(200, 'application/json; charset=utf-8', JSON.stringify({ ...snapshot, view: pageView(snapshot) }));
      else send(200, 'text/html; charset=utf-8', renderPage(snapshot), { 'Content-Security-Policy': PAGE_CSP, 'X-Frame-Options': 'DENY' });
    } catch (err) {
      if (!res.headersSent) send(503, plain, `the replicator cannot answer now: ${(err as Error).message}\n`, { 'Retry-After': '5' });
      else res.destroy();
    } finally {
      this.working--;
    }
  }

  /** Stops listening and ends the open connections (a browser's keep-alive would hold it open). */
  async close(): Promise<void> {
    this.detach();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

/** The server `--http` (or else the replication_http setting) asks for; none when neither is given. */
export async function startStatusHttp(option: string | undefined, setting: string | undefined, allowRemote: boolean, log: (line: string) => void): Promise<StatusHttpServer | undefined> {
  const value = option ?? setting;
  if (value === undefined) return undefined;
  const origin = option !== undefined ? '--http' : 'replication_http';
  let address: HttpAddress;
  try {
    address = parseHttpAddress(value);
  } catch (err) {
    throw new MailferryError(option !== undefined ? 'usage' : 'config', `invalid ${origin} '${value}': ${(err as Error).message}`);
  }
  return StatusHttpServer.listen({ address, origin, allowRemote, log });
}
