/**
 * The server's side of a session process: starts it for an authenticated connection, relays
 * the client's bytes to it and back (with backpressure both ways), watches the idle and total
 * time limits, and reports how the session ended. Whatever happens inside the process, the
 * server only sees it exit.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { MailferryError, tempError } from '../model/errors.js';
import { noCounts, SESSION_FD, type ServeMessage, type SessionCounts, type SessionReport } from './session-messages.js';

export interface SessionOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  counts: SessionCounts;
  /** The session's own error (a protocol error, a store that failed to close). */
  error?: string;
  /** Why the server ended it, when it did (idle, time limit, shutdown). */
  endedBy?: string;
  bytesIn: number;
  bytesOut: number;
}

export interface RelayLimits {
  idleMs: number;
  /** 0: no limit. */
  maxMs: number;
}

/** How long a session may take to close its store once the client has gone, before it is stopped. */
const CLOSE_GRACE_MS = 60_000;
/** Lines of a session's stderr logged at most; a session cannot flood the log. */
const MAX_LOG_LINES = 50;

function workerPath(): string {
  // Run from the sources (tests under tsx) the worker is a .ts file beside this one.
  return fileURLToPath(import.meta.url).replace(/session-process\.(ts|js)$/, (_m, ext: string) => `session-worker.${ext}`);
}

/** A session process, not yet told whom to serve. */
export function forkSessionWorker(): ChildProcess {
  // Its own process group: a Ctrl-C at the server's terminal is the server's to handle.
  return fork(workerPath(), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc', 'pipe'], detached: true, serialization: 'json' });
}

export class SessionProcess {
  readonly ready: Promise<void>;
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private counts: SessionCounts = noCounts();
  private error?: string;
  private endedBy?: string;
  private socket?: Socket;
  private lines = 0;
  /** What the process said last, for an error when it ends before it is ready. */
  private lastLine = '';

  /** `worker`: a process from forkSessionWorker() (a spare started ahead), else one is started. */
  constructor(msg: ServeMessage, log: (line: string) => void, worker: ChildProcess = forkSessionWorker()) {
    this.child = worker;
    const child = this.child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let partial = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      const parts = (partial + text).split('\n');
      partial = parts.pop()!.slice(-4096);
      for (const l of parts) this.logLine(l, log);
    });
    child.stderr!.on('end', () => partial !== '' && this.logLine(partial, log));
    this.ready = new Promise<void>((resolve, reject) => {
      child.on('message', (r: SessionReport) => {
        if (r.type === 'ready') resolve();
        else if (r.type === 'refused') reject(new MailferryError(r.kind, r.message));
        else if (r.type === 'done') {
          this.counts = r.counts;
          this.error = r.error;
        }
      });
      child.once('exit', (code, signal) =>
        // Its stderr may still be draining: the last line, if any, once it has.
        setImmediate(() => reject(tempError(`the session process ended before it was ready (${signal ?? `exit ${code}`}${this.lastLine ? `: ${this.lastLine}` : ''})`))),
      );
      child.once('error', (err) => reject(tempError(`the session process could not start: ${err.message}`)));
    });
    this.ready.catch(() => {});
    child.send(msg);
  }

  private logLine(line: string, log: (line: string) => void): void {
    this.lines++;
    // eslint-disable-next-line no-control-regex
    if (line.trim() !== '') this.lastLine = line.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 300);
    // eslint-disable-next-line no-control-regex
    if (this.lines <= MAX_LOG_LINES) log(line.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 2000));
    else if (this.lines === MAX_LOG_LINES + 1) log(`(further lines of this session not logged)`);
  }

  /** Relays between the client and the session until both are done. */
  async run(sock: Socket, leftover: Buffer, limits: RelayLimits): Promise<SessionOutcome> {
    this.socket = sock;
    const peer = this.child.stdio[SESSION_FD] as Socket;
    let bytesIn = 0;
    let bytesOut = 0;
    let last = Date.now();
    peer.on('error', () => {});
    sock.on('error', () => {});
    if (leftover.length > 0) {
      bytesIn += leftover.length;
      peer.write(leftover);
    }
    const relayIn = (c: Buffer) => {
      bytesIn += c.length;
      last = Date.now();
      if (!peer.write(c)) sock.pause();
    };
    sock.on('data', relayIn);
    peer.on('drain', () => sock.resume());
    peer.on('data', (c: Buffer) => {
      bytesOut += c.length;
      last = Date.now();
      if (!sock.write(c)) peer.pause();
    });
    sock.on('drain', () => peer.resume());
    sock.on('end', () => peer.end());
    peer.on('end', () => sock.end());
    const sockClosed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    let grace: NodeJS.Timeout | undefined;
    void sockClosed.then(() => {
      if (!peer.writableEnded) peer.end();
      grace = setTimeout(() => this.stop('it did not finish within a minute of the client leaving'), CLOSE_GRACE_MS);
    });
    const idle = setInterval(() => {
      if (Date.now() - last > limits.idleMs) this.end(`idle for ${Math.round(limits.idleMs / 1000)} seconds (server_idle_timeout)`);
    }, Math.min(5000, Math.max(100, limits.idleMs / 4)));
    const max = limits.maxMs > 0 ? setTimeout(() => this.end(`the session time limit of ${Math.round(limits.maxMs / 1000)} seconds (server_session_max_time)`), limits.maxMs) : undefined;
    sock.resume();
    await this.exited;
    clearInterval(idle);
    clearTimeout(max);
    clearTimeout(grace);
    // What the session wrote last reaches the client before the connection closes. What the
    // client still sends is dropped: left unread (a session that ended on a protocol error
    // stops reading mid-stream), the client's end of the stream is never seen, and the
    // connection, its user's turn with it, stayed held until the timeout below.
    sock.off('data', relayIn);
    sock.on('data', () => {});
    sock.resume();
    sock.end();
    const late = setTimeout(() => sock.destroy(), 5000);
    await sockClosed;
    clearTimeout(late);
    return { exitCode: this.child.exitCode, signal: this.child.signalCode, counts: this.counts, error: this.error, endedBy: this.endedBy, bytesIn, bytesOut };
  }

  /** Ends the session as a dropped connection would: the process closes its store and exits. */
  end(reason: string): void {
    this.endedBy ??= reason;
    if (this.socket) this.socket.destroy();
    else this.stop(reason);
  }

  /** Stops the process (SIGTERM, then SIGKILL): its store is crash-safe, the next run finishes the work. */
  stop(reason: string): void {
    this.endedBy ??= reason;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    setTimeout(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    }, 10_000).unref();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }
}
