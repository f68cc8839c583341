/**
 * Buffered sequential writing to a file descriptor from a given offset, with positional
 * patches for values known only after the bytes behind them were written.
 */
import { fsyncSync, readSync, write, writeSync } from 'node:fs';

const BUFFER_BYTES = 1024 * 1024;

function writeAll(fd: number, buf: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number) => {
      if (off >= buf.length) return resolve();
      write(fd, buf, off, buf.length - off, position + off, (err, n) => (err ? reject(err) : step(off + n)));
    };
    step(0);
  });
}

export class FileOutput {
  /**
   * Small writes are copied into one buffer rather than held as they come: a megabyte of
   * held pieces would outlive the young-generation collections and be freed only by a full one.
   */
  private readonly buf = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  /** Offset the next byte goes to. */
  position: number;
  /** The last byte written (-1 when none). */
  lastByte = -1;

  constructor(
    readonly fd: number,
    start: number,
  ) {
    this.position = start;
  }

  /** Writes `data`; the caller may reuse its buffer once this resolves. */
  async write(data: Buffer | string): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    if (buf.length === 0) return;
    if (this.used + buf.length > this.buf.length) await this.flush();
    if (buf.length >= this.buf.length) await writeAll(this.fd, buf, this.position);
    else {
      buf.copy(this.buf, this.used);
      this.used += buf.length;
    }
    this.position += buf.length;
    this.lastByte = buf[buf.length - 1]!;
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    const at = this.position - this.used;
    const n = this.used;
    this.used = 0;
    await writeAll(this.fd, this.buf.subarray(0, n), at);
  }

  /** Overwrites bytes already written (flushing first). */
  async patch(offset: number, data: string): Promise<void> {
    await this.flush();
    writeSync(this.fd, Buffer.from(data, 'latin1'), 0, Buffer.byteLength(data, 'latin1'), offset);
  }

  async sync(fsync: boolean): Promise<void> {
    await this.flush();
    if (fsync) fsyncSync(this.fd);
  }

  /** Copies [start, end) of another file; returns the bytes written. */
  async copyRange(srcFd: number, start: number, end: number): Promise<number> {
    const chunk = Buffer.alloc(Math.min(BUFFER_BYTES, Math.max(0, end - start)));
    for (let pos = start; pos < end; ) {
      const n = readSync(srcFd, chunk, 0, Math.min(chunk.length, end - pos), pos);
      if (n === 0) throw new Error(`unexpected end of file at byte offset ${pos}`);
      pos += n;
      await this.write(chunk.subarray(0, n));
    }
    return end - start;
  }
}
