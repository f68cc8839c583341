/**
 * One connection to a peer over any byte stream (a command's stdin/stdout, a socket, an
 * in-process pipe): the handshake, optional deflate, frames out and in, and the stall timer.
 * What the frames mean is the business of the client (remote-store.ts) and the server
 * (store-server.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Duplex, Writable } from 'node:stream';
import { constants as zlibConstants, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib';
import { MailferryError, tempError } from '../model/errors.js';
import { encodeFrame, FrameDecoder, type Frame, type FrameType } from './frame-codec.js';
import { echoedHello, encodeHello, parseHello, splitHello, type Hello } from './hello.js';
import { rawlogLine, rawlogNote } from './rawlog.js';

export interface ConnectionOptions {
  /** Names the peer in every error: `remote nas`. */
  label: string;
  /** Offer deflate; it is used when both sides offer it. */
  compress: boolean;
  /** Milliseconds the peer may stay silent while we wait for it (0: forever). */
  timeoutMs?: number;
  /** Receives one line per frame (the rawlog). */
  rawlog?: (line: string) => void;
  /** The largest frame payload taken from the peer (default MAX_FRAME_PAYLOAD): a server's limit on its clients. */
  maxFramePayload?: number;
}

export const FEATURE_DEFLATE = 'deflate';
/** How long a write that found the peer gone waits for the stream's end before it fails the connection. */
const PEER_GONE_WAIT_MS = 3000;
/** Output is written at the latest when this much is waiting. */
const OUTPUT_BATCH_BYTES = 256 * 1024;

export class WireConnection {
  /** Called for every frame received; a throw closes the connection with that error. */
  onFrame: (frame: Frame) => void = () => {};
  /** Called once when the connection ends: with the reason, or undefined when the peer ended it cleanly. */
  onClose: (err: Error | undefined) => void = () => {};
  /** True while we wait for the peer (pending requests, streams given credit): the stall timer runs. */
  waiting: () => boolean = () => false;

  readonly label: string;
  readonly peer: Hello;
  readonly compressed: boolean;
  private readonly stream: Duplex;
  private readonly out: Writable;
  private readonly deflate?: DeflateRaw;
  private readonly inflate?: InflateRaw;
  private readonly decoder: FrameDecoder;
  private readonly rawlog?: (line: string) => void;
  private readonly started = Date.now();
  private lastInput = Date.now();
  private flushQueued = false;
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private timer?: NodeJS.Timeout;
  private peerGone?: NodeJS.Timeout;
  private closedWith: { err: Error | undefined } | undefined;
  private pendingInput: Buffer;
  private drainWait: Promise<void> | undefined;
  private readonly closeWaiters: (() => void)[] = [];

  private constructor(stream: Duplex, peer: Hello, rest: Buffer, options: ConnectionOptions, started: number) {
    this.stream = stream;
    this.peer = peer;
    this.label = options.label;
    this.rawlog = options.rawlog;
    this.started = started;
    this.decoder = new FrameDecoder(options.maxFramePayload);
    this.compressed = options.compress && peer.features.includes(FEATURE_DEFLATE);
    if (this.compressed) {
      // Level 3: mail compresses nearly as well as at the default 6 for half the CPU.
      this.deflate = createDeflateRaw({ level: 3 });
      this.deflate.on('data', (c: Buffer) => stream.write(c));
      this.deflate.on('error', (err) => this.fail(tempError(`${this.label}: compression failed: ${err.message}`, err)));
      this.out = this.deflate;
      this.inflate = createInflateRaw();
      this.inflate.on('data', (c: Buffer) => this.input(c));
      this.inflate.on('error', (err) => this.fail(new MailferryError('data', `${this.label}: protocol error: the compressed stream is corrupt (${err.message})`)));
    } else {
      this.out = stream;
    }
    this.pendingInput = rest;
    stream.on('error', (err: NodeJS.ErrnoException) => {
      const failed = () => this.fail(tempError(`${this.label}: connection failed: ${err.message}`, err));
      // A write that finds the peer gone comes before the end of what it sent, and, for a
      // command, before the news of how the command ended: the end is waited for a moment, so
      // the error says that (killed by a signal, its exit status) rather than EPIPE.
      if ((err.code === 'EPIPE' || err.code === 'ECONNRESET') && !this.peerGone) this.peerGone = setTimeout(failed, PEER_GONE_WAIT_MS);
      else if (!this.peerGone) failed();
    });
    stream.on('close', () => this.close(undefined));
    const timeoutMs = options.timeoutMs ?? 0;
    if (timeoutMs > 0) {
      this.timer = setInterval(() => {
        if (this.waiting() && Date.now() - this.lastInput > timeoutMs) {
          this.fail(tempError(`${this.label}: I/O has stalled for ${Math.round(timeoutMs / 1000)} seconds (-T)`));
        }
      }, Math.min(1000, Math.max(50, timeoutMs / 4)));
    }
    this.note(`connected: peer speaks ${peer.major}.${peer.minor} [${peer.features.join(',')}]${this.compressed ? ', deflate on' : ''}`);
  }

  /** Starts reading frames; call once onFrame, onClose and waiting are set. */
  start(): void {
    const feed = (c: Buffer) => {
      this.lastInput = Date.now();
      if (this.inflate) this.inflate.write(c);
      else this.input(c);
    };
    const rest = this.pendingInput;
    this.pendingInput = Buffer.alloc(0);
    if (rest.length > 0) feed(rest);
    this.stream.on('data', feed);
    this.stream.on('end', () => this.close(undefined));
    this.stream.resume();
  }

  /** Says hello, waits for the peer's, and returns the connection ready for frames. */
  static open(stream: Duplex, options: ConnectionOptions, features: readonly string[] = []): Promise<WireConnection> {
    const started = Date.now();
    const offered = [...(options.compress ? [FEATURE_DEFLATE] : []), ...features];
    const nonce = randomBytes(8).toString('hex');
    const ours = encodeHello(offered, nonce);
    options.rawlog?.(rawlogNote(`hello sent: ${ours.toString().trim().replace(/\t/g, ' ')}`, 0));
    return new Promise((resolve, reject) => {
      let received = Buffer.alloc(0);
      let timer: NodeJS.Timeout | undefined;
      const done = (err: Error | undefined, conn?: WireConnection) => {
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.off('close', onEnd);
        stream.off('error', onError);
        if (timer) clearTimeout(timer);
        if (err) {
          stream.destroy();
          reject(err);
        } else resolve(conn!);
      };
      const onData = (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        let split;
        try {
          split = splitHello(received);
          if (!split) return;
          const hello = parseHello(split.line);
          if (hello.nonce === nonce) throw echoedHello();
          options.rawlog?.(rawlogNote(`hello received: ${split.line.toString('latin1').replace(/\t/g, ' ')}`, Date.now() - started));
          // Frames may follow in this same chunk: they wait, with the stream paused, until the
          // owner has set its handlers and calls start().
          stream.pause();
          const conn = new WireConnection(stream, hello, split.rest, options, started);
          done(undefined, conn);
        } catch (err) {
          if (err instanceof MailferryError) err.message = `${options.label}: ${err.message}`;
          done(err as Error);
        }
      };
      const onEnd = () => done(tempError(`${options.label}: the connection closed before the handshake${received.length ? ` (the peer sent only ${received.length} bytes)` : ''}`));
      const onError = (err: Error) => done(tempError(`${options.label}: connection failed: ${err.message}`, err));
      stream.on('data', onData);
      stream.on('end', onEnd);
      stream.on('close', onEnd);
      stream.on('error', onError);
      if (options.timeoutMs) {
        timer = setTimeout(() => done(tempError(`${options.label}: no handshake from the peer within ${Math.round(options.timeoutMs! / 1000)} seconds (-T)`)), options.timeoutMs);
      }
      stream.write(ours);
    });
  }

  /** Local work just ended: the peer's silence counts from now, not from its last frame. */
  touch(): void {
    this.lastInput = Date.now();
  }

  get isClosed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Sends one frame; false when the output is backed up (wait for {@link drained}). */
  send(type: FrameType, id: number, payload?: Buffer): boolean {
    if (this.closedWith?.err || this.stream.destroyed || this.stream.writableEnded) return false;
    const frame = encodeFrame(type, id, payload);
    if (this.rawlog) this.rawlog(rawlogLine('send', { type, id, payload: payload ?? Buffer.alloc(0) }, Date.now() - this.started));
    // Frames sent in one turn of the event loop go out in one write (and one deflate flush):
    // a message costs several small frames, and a write or a flush each was most of the CPU.
    this.queued.push(frame);
    this.queuedBytes += frame.length;
    if (this.queuedBytes >= OUTPUT_BATCH_BYTES) this.flushOutput();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => this.flushOutput());
    }
    return !this.out.writableNeedDrain;
  }

  private flushOutput(): void {
    this.flushQueued = false;
    if (this.queued.length === 0) return;
    const bytes = this.queued.length === 1 ? this.queued[0]! : Buffer.concat(this.queued, this.queuedBytes);
    this.queued = [];
    this.queuedBytes = 0;
    if (this.out.destroyed || this.out.writableEnded) return;
    this.out.write(bytes);
    if (this.deflate) this.deflate.flush(zlibConstants.Z_SYNC_FLUSH);
  }

  /** Resolves when the output can take more (or the connection is gone); one wait shared by all senders. */
  drained(): Promise<void> {
    if (this.closedWith || !this.out.writableNeedDrain) return Promise.resolve();
    if (!this.drainWait) {
      this.drainWait = new Promise<void>((resolve) => {
        const done = () => {
          this.out.off('drain', done);
          this.drainWait = undefined;
          resolve();
        };
        this.out.on('drain', done);
        this.closeWaiters.push(done);
      });
    }
    return this.drainWait;
  }

  /** Closes with an error: the stream is destroyed and everything waiting fails with it. */
  fail(err: Error): void {
    if (this.closedWith) return;
    this.note(`closed: ${err.message}`);
    this.close(err);
    this.stream.destroy();
  }

  /** Ends our side cleanly (after what is queued); resolves when it is written or the stream is gone. */
  async end(): Promise<void> {
    const stream = this.stream;
    if (stream.destroyed || stream.writableEnded) return;
    this.flushOutput();
    await new Promise<void>((resolve) => {
      const done = () => {
        stream.off('close', done);
        resolve();
      };
      stream.on('close', done);
      // The stream ends after the compressor's last bytes: those come out after its 'finish',
      // and ending the stream at 'finish' lost them (a write after end, the peer's inflate cut
      // short), and the peer was then killed instead of finishing.
      if (this.deflate && !this.deflate.destroyed) {
        this.deflate.once('end', () => stream.end(done));
        this.deflate.end();
      } else stream.end(done);
    });
  }

  private note(text: string): void {
    this.rawlog?.(rawlogNote(text, Date.now() - this.started));
  }

  private input(chunk: Buffer): void {
    if (this.closedWith) return;
    try {
      for (const frame of this.decoder.push(chunk)) {
        if (this.closedWith) return;
        if (this.rawlog) this.rawlog(rawlogLine('recv', frame, Date.now() - this.started));
        this.onFrame(frame);
      }
    } catch (err) {
      // The peer's name goes in front; the error keeps its class (a ProtocolError stays one).
      if (err instanceof MailferryError) err.message = `${this.label}: ${err.message}`;
      this.fail(err as Error);
    }
  }

  private close(err: Error | undefined): void {
    if (this.closedWith) return;
    this.closedWith = { err };
    clearTimeout(this.peerGone);
    if (this.timer) clearInterval(this.timer);
    for (const w of this.closeWaiters.splice(0)) w();
    this.inflate?.destroy();
    // A clean end keeps the output open for what is still to be said (the last replies).
    if (err) this.deflate?.destroy();
    this.onClose(err);
  }
}
