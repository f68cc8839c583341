/**
 * Sequential line reading over a file descriptor with a fixed buffer, so that scanning an mbox
 * of any size, or a message of any line length, uses the same small amount of memory.
 */
import { readSync } from 'node:fs';

export interface Line {
  /** File offset of the line's first byte. */
  start: number;
  /** File offset just past the line (past its LF, or the end of file). */
  end: number;
  /** The line's first bytes (at most the asked-for number), line end included if it fits. */
  head: Buffer;
  /** Length of the line end: 1 (LF), 2 (CRLF) or 0 (the file ended without one). */
  eol: number;
}

const CHUNK = 1024 * 1024;

export class ByteReader {
  private buf = Buffer.alloc(CHUNK);
  private bufStart = 0;
  private bufLen = 0;
  private pos = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  get offset(): number {
    return this.pos;
  }

  seek(offset: number): void {
    this.pos = offset;
  }

  /** Makes the buffer hold the byte at `pos` (when it exists); false at end of file. */
  private fill(): boolean {
    if (this.pos >= this.bufStart && this.pos < this.bufStart + this.bufLen) return true;
    if (this.pos >= this.size) return false;
    this.bufStart = this.pos;
    this.bufLen = 0;
    // Never past `size`: a scan of one range of a file must not read on into what follows it.
    const want = Math.min(CHUNK, this.size - this.bufStart);
    while (this.bufLen < want) {
      const n = readSync(this.fd, this.buf, this.bufLen, want - this.bufLen, this.bufStart + this.bufLen);
      if (n === 0) break;
      this.bufLen += n;
    }
    return this.bufLen > 0;
  }

  /** The next line, or undefined at end of file. Keeps at most `keep` bytes of it in `head`. */
  nextLine(keep: number): Line | undefined {
    if (!this.fill()) return undefined;
    const start = this.pos;
    const parts: Buffer[] = [];
    let kept = 0;
    for (;;) {
      if (!this.fill()) {
        return { start, end: this.pos, head: Buffer.concat(parts), eol: 0 };
      }
      const from = this.pos - this.bufStart;
      const lf = this.buf.indexOf(10, from);
      const stop = lf >= 0 && lf < this.bufLen ? lf + 1 : this.bufLen;
      if (kept < keep) {
        const take = Math.min(stop - from, keep - kept);
        parts.push(Buffer.from(this.buf.subarray(from, from + take)));
        kept += take;
      }
      this.pos = this.bufStart + stop;
      if (lf >= 0 && lf < this.bufLen) {
        const head = Buffer.concat(parts);
        const cr = lf > from ? this.buf[lf - 1] === 13 : head.length >= 2 && head[head.length - 2] === 13;
        return { start, end: this.pos, head, eol: cr ? 2 : 1 };
      }
    }
  }

  /** Up to `length` bytes at `offset`, read directly. */
  readAt(offset: number, length: number): Buffer {
    const out = Buffer.alloc(Math.max(0, Math.min(length, this.size - offset)));
    let got = 0;
    while (got < out.length) {
      const n = readSync(this.fd, out, got, out.length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return out.subarray(0, got);
  }
}
