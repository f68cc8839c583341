/**
 * Reading just the header of a streamed message, for header hashes: stops at the empty line
 * (or at `limit` bytes: a header that long is hashed on what was read) and destroys the stream.
 */
import type { Readable } from 'node:stream';
import { headerBlockOf } from '../model/header-hash.js';

export async function readHeader(stream: Readable, limit = 256 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      chunks.push(b);
      total += b.length;
      // Cheap test on the last two chunks only; the exact cut is made below.
      const tail = Buffer.concat(chunks.slice(-2));
      if (tail.includes('\n\n') || tail.includes('\r\n\r\n') || total >= limit) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.from(headerBlockOf(Buffer.concat(chunks).subarray(0, limit)));
}
