/**
 * The replicator's end of the control socket: a UNIX socket, mode 0600 (root's replicator is
 * controlled by root alone), one JSON request a line. A socket file left by a replicator that
 * died is taken over; one that still answers means another replicator runs, and this one stops.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { configError, fsError, tempError } from '../model/errors.js';
import { MAX_LINE, parseRequest, type ControlReply, type ControlRequest } from './control-protocol.js';

export type ControlHandler = (request: ControlRequest) => Promise<ControlReply>;

/** A client that says nothing for this long is let go. */
const IDLE_MS = 60_000;
const MAX_CLIENTS = 64;

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private readonly clients = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  static async listen(path: string, handler: ControlHandler): Promise<ControlServer> {
    let existing;
    try {
      existing = lstatSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, `control socket ${path}`);
    }
    if (existing !== undefined) {
      if (!existing.isSocket()) throw configError(`control socket ${path} exists and is not a socket; remove it or choose another --socket`);
      if (await answers(path)) throw tempError(`another mailferry replicator answers at ${path}`);
      unlinkSync(path);
    }
    const server = createServer();
    const control = new ControlServer(server, path);
    server.maxConnections = MAX_CLIENTS;
    server.on('connection', (socket) => control.serve(socket, handler));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(fsError(err, `control socket ${path}`)));
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
    return control;
  }

  private serve(socket: Socket, handler: ControlHandler): void {
    this.clients.add(socket);
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    socket.on('close', () => this.clients.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = '';
    let busy = Promise.resolve();
    const reply = (r: ControlReply) => {
      if (!socket.destroyed) socket.write(`${JSON.stringify(r)}\n`);
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > MAX_LINE && !buffered.slice(0, MAX_LINE).includes('\n')) {
        reply({ ok: false, error: `request longer than ${MAX_LINE} bytes`, exitCode: 64 });
        socket.end();
        buffered = '';
        return;
      }
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl).replace(/\r$/, '');
        buffered = buffered.slice(nl + 1);
        if (line.trim() === '') continue;
        // Requests on one connection are answered in order.
        busy = busy.then(async () => {
          let request: ControlRequest;
          try {
            request = parseRequest(line);
          } catch (err) {
            reply({ ok: false, error: (err as Error).message, exitCode: 64 });
            return;
          }
          try {
            reply(await handler(request));
          } catch (err) {
            reply({ ok: false, error: (err as Error).message, exitCode: (err as { exitCode?: number }).exitCode ?? 75 });
          }
        });
      }
    });
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // removed already (node removes it on close)
    }
  }
}
