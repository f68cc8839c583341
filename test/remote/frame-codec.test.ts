/**
 * The frame codec and the hello line: round trips across any split of the byte stream, and
 * whatever bytes a peer sends, a clean ProtocolError (or config error for a hello) and never
 * more memory than one frame.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MailferryError } from '../../src/model/errors.js';
import { encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, FrameType, MAX_FRAME_PAYLOAD, type Frame } from '../../src/remote/frame-codec.js';
import { encodeHello, parseHello, PROTOCOL_MAJOR, PROTOCOL_VERSION, splitHello } from '../../src/remote/hello.js';
import { ProtocolError } from '../../src/remote/protocol-error.js';

const TYPES = Object.values(FrameType).filter((v): v is FrameType => typeof v === 'number');

const frameArb = fc.record({
  type: fc.constantFrom(...TYPES),
  id: fc.nat({ max: 0xffffffff }),
  payload: fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
}, { noNullPrototype: true });

/** Cuts `bytes` at the given offsets. */
function splitAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  out.push(bytes.subarray(last));
  return out;
}

function decodeAll(decoder: FrameDecoder, chunks: Buffer[]): Frame[] {
  return chunks.flatMap((c) => decoder.push(c));
}

describe('frame codec', () => {
  it('frames come back whole and in order, however the stream is cut', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (frames, cuts) => {
        const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.id, f.payload)));
        const decoder = new FrameDecoder();
        const got = decodeAll(decoder, splitAt(bytes, cuts));
        assert.equal(got.length, frames.length);
        got.forEach((g, i) => {
          assert.equal(g.type, frames[i]!.type);
          assert.equal(g.id, frames[i]!.id);
          assert.ok(g.payload.equals(frames[i]!.payload));
        });
        assert.equal(decoder.pendingBytes, 0);
      }),
      { numRuns: 300 },
    );
  });

  it('a truncated frame yields nothing yet and holds only its bytes', () => {
    fc.assert(
      fc.property(frameArb, fc.nat(), (f, k) => {
        const bytes = encodeFrame(f.type, f.id, f.payload);
        const cut = k % bytes.length;
        const decoder = new FrameDecoder();
        assert.deepEqual(decoder.push(bytes.subarray(0, cut)), []);
        assert.equal(decoder.pendingBytes, cut);
        assert.equal(decoder.push(bytes.subarray(cut)).length, 1);
      }),
    );
  });

  it('a frame announcing more than the limit is refused from its header alone', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TYPES), fc.integer({ min: MAX_FRAME_PAYLOAD + 1, max: 0xffffffff }), (type, length) => {
        const head = Buffer.alloc(FRAME_HEADER_BYTES);
        head.writeUInt8(type, 0);
        head.writeUInt32BE(7, 1);
        head.writeUInt32BE(length, 5);
        const decoder = new FrameDecoder();
        assert.throws(() => decoder.push(head), (e: unknown) => e instanceof ProtocolError && /limit/.test(e.message));
      }),
    );
  });

  it('unknown frame types are refused', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }).filter((t) => !TYPES.includes(t)), (type) => {
        const head = Buffer.alloc(FRAME_HEADER_BYTES);
        head.writeUInt8(type, 0);
        assert.throws(() => new FrameDecoder().push(head), (e: unknown) => e instanceof ProtocolError && e.exitCode === 65);
      }),
    );
  });

  it('random bytes give frames or a ProtocolError, never another error, and bounded buffering', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 4096 }), { maxLength: 30 }), (chunks) => {
        const decoder = new FrameDecoder();
        try {
          for (const c of chunks) {
            decoder.push(Buffer.from(c));
            assert.ok(decoder.pendingBytes <= FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD + 4096);
          }
        } catch (err) {
          assert.ok(err instanceof ProtocolError, String(err));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('the encoder refuses what the decoder would', () => {
    assert.throws(() => encodeFrame(FrameType.Data, 1, Buffer.alloc(MAX_FRAME_PAYLOAD + 1)), RangeError);
    assert.throws(() => encodeFrame(99 as FrameType, 1), RangeError);
    assert.throws(() => encodeFrame(FrameType.Data, -1), RangeError);
  });
});

describe('hello line', () => {
  it('round-trips version and features, and leaves the following bytes', () => {
    const hello = encodeHello(['deflate', 'x-future']);
    const split = splitHello(Buffer.concat([hello, Buffer.from([1, 2, 3])]))!;
    assert.deepEqual([...split.rest], [1, 2, 3]);
    const parsed = parseHello(split.line);
    assert.equal(parsed.major, PROTOCOL_MAJOR);
    assert.deepEqual(parsed.features, ['deflate', 'x-future']);
  });

  it('carries a nonce when given one; a hello without one (or with a malformed one) still parses', () => {
    const nonce = 'c0ffee00deadbeef';
    assert.equal(parseHello(splitHello(encodeHello(['deflate'], nonce))!.line).nonce, nonce);
    assert.equal(parseHello(Buffer.from(`MAILFERRY\t${PROTOCOL_MAJOR}.0\tdeflate`)).nonce, undefined);
    const odd = parseHello(Buffer.from(`MAILFERRY\t${PROTOCOL_MAJOR}.0\tdeflate\tNOT HEX`));
    assert.equal(odd.nonce, undefined);
    assert.deepEqual(odd.features, ['deflate']);
    assert.throws(() => encodeHello([], 'xyz'), RangeError);
  });

  it('another major version is a config error naming both versions', () => {
    const line = Buffer.from(`MAILFERRY\t${PROTOCOL_MAJOR + 1}.3\tdeflate`);
    assert.throws(
      () => parseHello(line),
      (e: unknown) => e instanceof MailferryError && e.exitCode === 78 && e.message.includes(`${PROTOCOL_MAJOR + 1}.3`) && e.message.includes(PROTOCOL_VERSION),
    );
  });

  it('text that is not a hello is quoted in a config error', () => {
    assert.throws(
      () => parseHello(Buffer.from('Welcome to nas! Last login: yesterday')),
      (e: unknown) => e instanceof MailferryError && e.exitCode === 78 && e.message.includes('Welcome to nas'),
    );
  });

  it('any bytes: a hello, more needed, or a config error; never more than a line is held', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (a) => {
        const bytes = Buffer.from(a);
        try {
          const split = splitHello(bytes);
          if (split) parseHello(split.line);
          else assert.ok(bytes.length <= 1024);
        } catch (err) {
          assert.ok(err instanceof MailferryError && err.exitCode === 78, String(err));
        }
      }),
      { numRuns: 500 },
    );
  });
});
