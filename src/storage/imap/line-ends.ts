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

export function crlfToLf(buf: Buffer): Buffer {
  let at = buf.indexOf('\r\n');
  if (at < 0) return buf;
  const out = Buffer.allocUnsafe(buf.length);
  let w = 0;
  let r = 0;
  while (at >= 0) {
    w += buf.copy(out, w, r, at);
    r = at + 1; // skip the CR, keep the LF
    at = buf.indexOf('\r\n', r);
  }
  w += buf.copy(out, w, r);
  return out.subarray(0, w);
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
