/**
 * A body is checked against the RFC822.SIZE the server announced for it: a server that sends
 * `BODY[] NIL`, `{0}` or a truncated body for a message it says holds 148 bytes must not have
 * that stored as the message, and one that announces 100 bytes and sends 20 MB must not be
 * believed either way. The index keeps the server's size for mail it found, and the LF size
 * for mail this store saved (the server adds a CR to every line), so a body fits when its LF
 * form is not larger than announced and its wire form is not smaller. A small slack allows
 * for servers whose RFC822.SIZE is not exact.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { dataError } from '../../model/errors.js';

const CR = 0x0d;
const LF = 0x0a;

export function sizeSlack(size: number): number {
  return 64 + Math.floor(Math.max(0, size) / 16);
}

/** The most wire bytes a message of announced `size` can take: a CR per LF at worst. */
export function wireCap(size: number): number {
  return 2 * (Math.max(0, size) + sizeSlack(size));
}

/** Why a body of `wire` bytes (`lf` once CRLF became LF) is not a message of `size`, or undefined. */
export function sizeProblem(size: number, wire: number, lf: number): string | undefined {
  if (lf > size + sizeSlack(size)) return `the server announced ${size} bytes and sent more (${wire})`;
  if (wire + sizeSlack(size) < size) return `the server announced ${size} bytes and sent ${wire}`;
  return undefined;
}

export function sizeError(where: string, serverUid: number, problem: string): Error {
  return dataError(`${where}: message UID ${serverUid}: ${problem}; it is not copied`);
}

/**
 * Counts a streamed body as it passes (wire bytes in, CRLF still there) and fails the stream
 * once it outgrows the announced size, so nothing larger is read on; a body that ends short
 * fails at its end.
 */
export class SizeGuard extends Transform {
  private wire = 0;
  private crlf = 0;
  private lastWasCr = false;

  constructor(
    private readonly size: number,
    private readonly fail: (problem: string) => Error,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    for (let at = chunk.indexOf(LF); at >= 0; at = chunk.indexOf(LF, at + 1)) {
      if (at === 0 ? this.lastWasCr : chunk[at - 1] === CR) this.crlf++;
    }
    if (chunk.length > 0) this.lastWasCr = chunk[chunk.length - 1] === CR;
    this.wire += chunk.length;
    // Too long is known as soon as it happens (a CR per LF at most, so the wire form is bounded
    // too); too short only at the end.
    const lf = this.wire - this.crlf;
    if (lf > this.size + sizeSlack(this.size)) return done(this.fail(sizeProblem(this.size, this.wire, lf)!));
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const problem = sizeProblem(this.size, this.wire, this.wire - this.crlf);
    done(problem ? this.fail(problem) : null);
  }
}
