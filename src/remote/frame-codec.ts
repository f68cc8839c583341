/**
 * mailferry's wire frames, pure (no I/O): a 9-byte header, then the payload.
 *
 *   type u8 | id u32 big-endian | payload length u32 big-endian | payload
 *
 * The id is a request's (answered by it) or a body stream's (every id is chosen by the
 * client, from one counter, so requests and streams never share one). A frame longer than
 * {@link MAX_FRAME_PAYLOAD} or of a type this version does not know is a protocol error, found
 * from the header alone: nothing is allocated for a frame that will be refused.
 */
import { ProtocolError } from './protocol-error.js';

export const FRAME_HEADER_BYTES = 9;
/** Hard limit of one frame's payload; metadata larger than this travels in several frames. */
export const MAX_FRAME_PAYLOAD = 1024 * 1024;
/** Body bytes per data frame. */
export const BODY_CHUNK_BYTES = 64 * 1024;

export enum FrameType {
  /** Client: the last (often the only) frame of a request, JSON with its `op`. */
  Request = 1,
  /** Server: the last frame of a successful reply, JSON. */
  Reply = 2,
  /** Either side: items of one long array of the request or reply with this id, JSON. */
  Part = 3,
  /** Either side: a failed request, body stream or save, JSON `{kind, message}`. */
  Error = 4,
  /** Body bytes of a stream, at most the credit the receiver gave. */
  Data = 5,
  /** The end of a body stream, JSON `{bytes}`: the byte count the receiver must have seen. */
  End = 6,
  /** The receiver of a stream allows this many more bytes (u32). */
  Credit = 7,
  /** The receiver of a stream wants no more of it. */
  Cancel = 8,
  /** Server, during a save: send this many more messages (u32). */
  Pull = 9,
  /** Client, during a save: one message's metadata, JSON, its body on the stream it names. */
  Item = 10,
  /** Client, during a save: no more messages. */
  ItemsEnd = 11,
}

const TYPE_NAMES = new Map<number, string>(Object.entries(FrameType).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v as number, k]));

export function frameTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `type ${type}`;
}

export interface Frame {
  type: FrameType;
  id: number;
  payload: Buffer;
}

export const MAX_ID = 0xffffffff;

export function encodeFrame(type: FrameType, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (!TYPE_NAMES.has(type)) throw new RangeError(`unknown frame type ${type}`);
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID) throw new RangeError(`frame id ${id} out of range`);
  if (payload.length > MAX_FRAME_PAYLOAD) throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt8(type, 0);
  out.writeUInt32BE(id, 1);
  out.writeUInt32BE(payload.length, 5);
  payload.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/** A u32 payload (credits, pulls). */
export function u32Payload(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

export function readU32Payload(frame: Frame): number {
  if (frame.payload.length !== 4) throw new ProtocolError(`${frameTypeName(frame.type)} frame ${frame.id} has a payload of ${frame.payload.length} bytes, expected 4`);
  return frame.payload.readUInt32BE(0);
}

/**
 * Splits a byte stream into frames. Holds at most one frame plus one input chunk; a header
 * announcing too much, or a type it does not know, throws before the payload is awaited.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly maxPayload: number;

  constructor(maxPayload = MAX_FRAME_PAYLOAD) {
    this.maxPayload = maxPayload;
  }

  /** Bytes held for a frame not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) break;
      const head = this.peek(FRAME_HEADER_BYTES);
      const type = head.readUInt8(0);
      const id = head.readUInt32BE(1);
      const length = head.readUInt32BE(5);
      if (!TYPE_NAMES.has(type)) throw new ProtocolError(`unknown frame type ${type} (id ${id})`);
      if (length > this.maxPayload) {
        throw new ProtocolError(`${frameTypeName(type)} frame ${id} announces ${length} bytes, more than the ${this.maxPayload} byte limit`);
      }
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      const whole = this.take(FRAME_HEADER_BYTES + length);
      frames.push({ type: type as FrameType, id, payload: whole.subarray(FRAME_HEADER_BYTES) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  private take(n: number): Buffer {
    const first = this.peek(n);
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}
