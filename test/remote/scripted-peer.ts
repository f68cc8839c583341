/**
 * A peer that follows a script instead of the protocol's rules: it says hello (or anything
 * else), then sends whatever frames and bytes the test wants, lies included, and hands the test
 * the frames it receives. No compression, so the test sees and writes the plain frames.
 */
import type { Duplex } from 'node:stream';
import { encodeFrame, FrameDecoder, type Frame, type FrameType } from '../../src/remote/frame-codec.js';
import { PROTOCOL_VERSION } from '../../src/remote/hello.js';

export class ScriptedPeer {
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private helloSeen = false;
  private received = Buffer.alloc(0);
  private readonly queue: Frame[] = [];
  private wake?: () => void;
  ended = false;
  onFrame?: (frame: Frame) => void;

  constructor(
    readonly stream: Duplex,
    hello: string | Buffer = `MAILFERRY\t${PROTOCOL_VERSION}\t\n`,
  ) {
    stream.on('error', () => {});
    stream.on('data', (c: Buffer) => this.input(c));
    stream.on('end', () => this.stop());
    stream.on('close', () => this.stop());
    stream.write(hello);
  }

  private stop(): void {
    this.ended = true;
    this.wake?.();
  }

  private input(chunk: Buffer): void {
    if (!this.helloSeen) {
      this.received = Buffer.concat([this.received, chunk]);
      const nl = this.received.indexOf(0x0a);
      if (nl < 0) return;
      this.helloSeen = true;
      chunk = this.received.subarray(nl + 1);
    }
    for (const f of this.decoder.push(chunk)) {
      if (this.onFrame) this.onFrame(f);
      else this.queue.push(f);
    }
    this.wake?.();
  }

  /** The next frame received, or undefined once the stream ended. */
  async next(): Promise<Frame | undefined> {
    while (this.queue.length === 0 && !this.ended) await new Promise<void>((r) => (this.wake = r));
    return this.queue.shift();
  }

  /** The next frame of this type (others are skipped). */
  async expect(type: FrameType): Promise<Frame> {
    for (;;) {
      const f = await this.next();
      if (!f) throw new Error(`stream ended while waiting for frame type ${type}`);
      if (f.type === type) return f;
    }
  }

  send(type: FrameType, id: number, payload: Buffer | object | string = Buffer.alloc(0)): void {
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
    if (!this.stream.destroyed) this.stream.write(encodeFrame(type, id, bytes));
  }

  raw(bytes: Buffer): void {
    if (!this.stream.destroyed) this.stream.write(bytes);
  }

  close(): void {
    this.stream.end();
  }
}

/** What a server answers to `open` for a Maildir++ store. */
export function openReply(storeId = 'hostile-store'): object {
  return { location: 'maildir:/far', storeId, separator: '.', nativeGuids: true, assignsOwnUids: false, ownsSpecialUseNames: false, optional: [], names: { kind: 'maildir', layout: 'maildir++' } };
}

export const INBOX_STATUS = { name: ['INBOX'], guid: '0123456789abcdef0123456789abcdef', uidValidity: 1700000000, uidNext: 2, highestModseq: 5, messages: 1, specialUse: [], subscribed: false };
