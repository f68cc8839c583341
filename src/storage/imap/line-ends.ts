/**
 * IMAP carries messages with CRLF line ends; Maildir and mbox keep LF, and Dovecot itself
 * stores LF and adds the CR on the wire. The IMAP store therefore speaks LF to the engine:
 * CRLF -> LF on every read, bare LF -> CRLF on APPEND. A message saved from a Maildir comes
 * back byte for byte; only a message whose file held CRLF comes back with LF (as Dovecot
 * would store it).
 */
import { Transform, type TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;

/** CRLF -> LF into a new buffer; `buf` is left as it is. */
export function crlfToLf(buf: Buffer): Buffer {
  if (countCrlf(buf) === 0) return buf;
  return crlfToLfInPlace(Buffer.from(buf));
}

/**
 * CRLF -> LF by moving the bytes of `buf` down over each such CR; returns the shortened view.
 * For bodies just read off the wire, which nobody else holds: no copy of the message is made.
 * Searching for the CR byte (a memchr) rather than for the two-byte string is what keeps this
 * cheap on large messages.
 */
export function crlfToLfInPlace(buf: Buffer): Buffer {
  let at = nextCrlf(buf, 0);
  if (at < 0) return buf;
  let w = at;
  let r = at + 1; // skip the CR, keep the LF
  for (at = nextCrlf(buf, r); at >= 0; at = nextCrlf(buf, r)) {
    buf.copyWithin(w, r, at);
    w += at - r;
    r = at + 1;
  }
  buf.copyWithin(w, r);
  return buf.subarray(0, w + buf.length - r);
}

/** How many bytes CRLF -> LF would remove. */
export function countCrlf(buf: Buffer): number {
  let n = 0;
  for (let at = nextCrlf(buf, 0); at >= 0; at = nextCrlf(buf, at + 2)) n++;
  return n;
}

/** Index of the next CR followed by LF at or after `from`, or -1. */
function nextCrlf(buf: Buffer, from: number): number {
  for (let at = buf.indexOf(CR, from); at >= 0; at = buf.indexOf(CR, at + 1)) {
    if (buf[at + 1] === LF) return at;
  }
  return -1;
}

export function lfToCrlf(buf: Buffer): Buffer {
  let bare = 0;
  for (let i = buf.indexOf(LF); i >= 0; i = buf.indexOf(LF, i + 1)) if (i === 0 || buf[i - 1] !== CR) bare++;
  if (bare === 0) return buf;
  const out = Buffer.allocUnsafe(buf.length + bare);
  let w = 0;
  let r = 0;
  for (let i = buf.indexOf(LF); i >= 0; i = buf.indexOf(LF, i + 1)) {
    if (i > 0 && buf[i - 1] === CR) continue;
    w += buf.copy(out, w, r, i);
    out[w++] = CR;
    r = i;
  }
  w += buf.copy(out, w, r);
  return out.subarray(0, w);
}

/** CRLF -> LF across chunk boundaries, for bodies too large to hold. */
export class CrlfToLf extends Transform {
  private pendingCr = false;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let buf = chunk;
    if (this.pendingCr) {
      buf = Buffer.concat([Buffer.from([CR]), buf]);
      this.pendingCr = false;
    }
    if (buf.length > 0 && buf[buf.length - 1] === CR) {
      this.pendingCr = true;
      buf = buf.subarray(0, -1);
    }
    done(null, crlfToLf(buf));
  }
  override _flush(done: TransformCallback): void {
    done(null, this.pendingCr ? Buffer.from([CR]) : undefined);
  }
}
