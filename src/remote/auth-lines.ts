/**
 * Reads the lines of the authentication exchange off a socket, one at a time, never holding
 * more than one line's limit: a peer that sends more without a line end, stays silent past the
 * deadline, or goes away is reported as such. Once the exchange is over, what arrived after the
 * last line is handed back with the socket paused, for the protocol that follows.
 */
import type { Duplex } from 'node:stream';

export type LineFailure = 'timeout' | 'closed' | 'too-long' | 'error';

export class LineError extends Error {
  constructor(
    readonly reason: LineFailure,
    message: string,
    /** The first bytes of what arrived (for telling a TLS record from a plaintext line). */
    readonly received: Buffer,
  ) {
    super(message);
  }
}

export class LineReader {
  private buffered: Buffer = Buffer.alloc(0);
  private waiter?: { resolve(line: Buffer): void; reject(err: LineError): void };
  private failure?: LineError;
  private readonly onData = (chunk: Buffer) => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.settle();
  };
  private readonly onEnd = () => this.fail('closed', 'the connection closed');
  private readonly onError = (err: Error) => this.fail('error', err.message);

  constructor(
    private readonly stream: Duplex,
    private readonly maxLine: number,
  ) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
  }

  /** The next line without its line end. */
  next(timeoutMs: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => this.fail('timeout', `nothing within ${Math.round(timeoutMs / 1000)} seconds`), timeoutMs);
      this.waiter = {
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.settle();
      this.stream.resume();
    });
  }

  /** Stops reading; returns the bytes that followed the last line. */
  detach(): Buffer {
    this.stream.pause();
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onError);
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }

  private fail(reason: LineFailure, message: string): void {
    this.failure ??= new LineError(reason, message, this.buffered.subarray(0, 16));
    this.settle();
  }

  private settle(): void {
    const w = this.waiter;
    if (!w) {
      if (this.buffered.length > this.maxLine) this.stream.pause();
      return;
    }
    const nl = this.buffered.indexOf(0x0a);
    if (nl >= 0 && nl <= this.maxLine) {
      this.waiter = undefined;
      const l = this.buffered.subarray(0, nl);
      this.buffered = this.buffered.subarray(nl + 1);
      w.resolve(l[l.length - 1] === 0x0d ? l.subarray(0, -1) : l);
      return;
    }
    if (nl > this.maxLine || (nl < 0 && this.buffered.length > this.maxLine)) {
      this.waiter = undefined;
      w.reject(new LineError('too-long', `a line longer than ${this.maxLine} bytes`, this.buffered.subarray(0, 16)));
      return;
    }
    if (this.failure) {
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }
}
