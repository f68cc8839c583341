/**
 * Message bodies on the wire: a stream of Data frames under credit, ended by an End frame that
 * says how many bytes were sent. The receiver gives credit as its reader takes bytes, so each
 * side holds at most about {@link BODY_WINDOW} of any one body; data beyond the credit given,
 * or an End whose count differs from what arrived, is a protocol error and never reaches a store
 * as a whole message.
 */
import { Readable } from 'node:stream';
import { BODY_CHUNK_BYTES, FrameType, u32Payload } from './frame-codec.js';
import { ProtocolError } from './protocol-error.js';
import { count, object } from './wire-check.js';
import { encodeError } from './wire-errors.js';
import type { WireConnection } from './wire-connection.js';

/** Credit a receiver keeps open per body. */
export const BODY_WINDOW = 256 * 1024;

/** The receiving end: a Readable fed by Data frames. */
export class IncomingBody extends Readable {
  private granted: number;
  private received = 0;
  private finished = false;
  private ended = false;
  /**
   * The credit kept open, half of which is the low mark: the first credit given (most mail fits
   * in it, and then takes no Credit frame at all), the whole window once more was needed.
   */
  private window: number;

  constructor(
    private readonly conn: WireConnection,
    readonly id: number,
    initialCredit: number,
    private readonly what: string,
    private readonly onDone: () => void,
  ) {
    super({ highWaterMark: BODY_CHUNK_BYTES });
    this.granted = initialCredit;
    this.window = initialCredit > 0 ? Math.min(initialCredit, BODY_WINDOW) : BODY_WINDOW;
    // A body opened but not read yet fails when the connection does; its reader, once it reads,
    // sees the error. Until then no listener exists, and an unheard error would end the process.
    this.on('error', () => {});
  }

  /** Bytes arrived so far; the whole body's once it ended. */
  get bytesReceived(): number {
    return this.received;
  }

  /** The sender's End came and matched what arrived. */
  get complete(): boolean {
    return this.ended;
  }

  /** True while we gave credit the peer has not used: we are waiting for it. */
  get awaitingData(): boolean {
    return !this.finished && !this.destroyed && this.granted > this.received;
  }

  data(chunk: Buffer): void {
    if (this.finished) throw new ProtocolError(`${this.what}: data after its end`);
    if (this.received + chunk.length > this.granted) {
      throw new ProtocolError(`${this.what}: ${this.received + chunk.length} bytes sent, only ${this.granted} allowed`);
    }
    this.received += chunk.length;
    this.push(chunk);
  }

  finish(payload: Buffer): void {
    if (this.finished) throw new ProtocolError(`${this.what}: ended twice`);
    const o = object(parseJson(payload, this.what), `${this.what} end`);
    const bytes = count(o.bytes, `${this.what} end.bytes`);
    if (bytes !== this.received) throw new ProtocolError(`${this.what}: said it sent ${bytes} bytes, but ${this.received} arrived`);
    this.finished = true;
    this.ended = true;
    this.onDone();
    this.push(null);
  }

  /** The request that would have started this stream failed: nothing to cancel. */
  forget(): void {
    if (this.finished) return;
    this.finished = true;
    this.onDone();
    this.destroy();
  }

  /** The sender failed (its store could not read the message) or the connection is gone. */
  fail(err: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.onDone();
    this.destroy(err);
  }

  override _read(): void {
    const open = this.granted - this.received;
    if (this.finished || open >= this.window / 2) return;
    this.window = BODY_WINDOW;
    const more = BODY_WINDOW - open;
    this.granted += more;
    this.conn.send(FrameType.Credit, this.id, u32Payload(more));
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.finished) {
      // Our reader stopped early: the sender may stop too. What it already sent within the
      // credit is dropped when it arrives.
      this.finished = true;
      this.onDone();
      this.conn.send(FrameType.Cancel, this.id);
    }
    callback(err);
  }
}

function parseJson(payload: Buffer, what: string): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError(`${what}: an end that is not valid JSON`);
  }
}

/** The sending end: pumps a Readable into Data frames as credit allows. */
export class OutgoingBody {
  private credit: number;
  private cancelled = false;
  private wake?: () => void;
  /** The byte count of the End sent, once the whole body went out. */
  sentBytes: number | undefined;

  constructor(
    private readonly conn: WireConnection,
    readonly id: number,
    private readonly source: Readable,
    initialCredit: number,
    private readonly onSourceError: (err: unknown) => void = () => {},
  ) {
    this.credit = initialCredit;
  }

  addCredit(n: number): void {
    this.credit += n;
    this.wake?.();
  }

  cancel(): void {
    this.cancelled = true;
    this.wake?.();
  }

  /** Sends the whole body (or stops when cancelled or the connection is gone); never rejects. */
  async run(): Promise<void> {
    let total = 0;
    try {
      for await (const c of this.source) {
        let chunk: Buffer = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
        while (chunk.length > 0) {
          while (this.credit <= 0 && !this.stopped) await new Promise<void>((r) => (this.wake = r));
          this.wake = undefined;
          if (this.stopped) return;
          const n = Math.min(this.credit, chunk.length, BODY_CHUNK_BYTES);
          const piece = chunk.subarray(0, n);
          chunk = chunk.subarray(n);
          this.credit -= n;
          total += n;
          if (!this.conn.send(FrameType.Data, this.id, piece)) await this.conn.drained();
        }
        if (this.stopped) return;
      }
      this.conn.send(FrameType.End, this.id, Buffer.from(JSON.stringify({ bytes: total })));
      this.sentBytes = total;
    } catch (err) {
      if (this.stopped) return;
      this.onSourceError(err);
      this.conn.send(FrameType.Error, this.id, encodeError(err));
    } finally {
      this.source.destroy();
    }
  }

  private get stopped(): boolean {
    return this.cancelled || this.conn.isClosed;
  }
}
