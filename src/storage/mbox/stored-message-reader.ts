/**
 * Serving one message from its mbox file: the header without metadata lines (read and
 * filtered in memory, it is small), then the body streamed from its byte range.
 */
import { closeSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import { openFileSync } from '../safe-fs.js';
import { isMissing } from './missing-file.js';
import { headerBlockOf, headerHash } from '../../model/header-hash.js';
import { parseFromLine } from './from-line.js';
import { analyzeHeader } from './message-header.js';
import type { MessageLocation } from './message-location.js';
import { HASHED_PREFIX_BYTES } from './stored-message.js';

/** Messages up to this size are read in one piece. */
const SMALL_MESSAGE_BYTES = 1024 * 1024;
const CHUNK = 256 * 1024;

function readRange(fd: number, start: number, end: number): Buffer {
  const buf = Buffer.alloc(Math.max(0, end - start));
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, start + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

async function* bodyChunks(fd: number, start: number, end: number): AsyncGenerator<Buffer> {
  try {
    for (let pos = start; pos < end; ) {
      const piece = readRange(fd, pos, Math.min(end, pos + CHUNK));
      if (piece.length === 0) break;
      pos += piece.length;
      yield piece;
    }
  } finally {
    closeSync(fd);
  }
}

function trimLine(line: Buffer): Buffer {
  const lf = line.indexOf(10);
  return line.subarray(0, lf < 0 ? line.length : lf);
}

/**
 * The message at `loc`, or undefined when the file no longer holds it there (its From line or
 * header hash differ: the file was rewritten by someone else since the last scan).
 */
export function openStoredMessage(path: string, loc: MessageLocation, size: number): Readable | undefined {
  let fd: number;
  try {
    fd = openFileSync(path);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  let handedOver = false;
  try {
    if (loc.bodyOnly) {
      if (parseFromLine(trimLine(readRange(fd, loc.from, loc.hdr))) === undefined) return undefined;
      if (headerHash(headerBlockOf(readRange(fd, loc.body, Math.min(loc.end, loc.body + HASHED_PREFIX_BYTES)))) !== loc.hash) return undefined;
      if (size <= SMALL_MESSAGE_BYTES) return Readable.from([readRange(fd, loc.body, loc.end)]);
      handedOver = true;
      return Readable.from(bodyChunks(fd, loc.body, loc.end));
    }
    const head = readRange(fd, loc.from, loc.hdrEnd);
    const fromLine = head.subarray(0, loc.hdr - loc.from);
    if (parseFromLine(trimLine(fromLine)) === undefined) return undefined;
    const info = analyzeHeader(head.subarray(loc.hdr - loc.from), false);
    if (headerHash(info.served) !== loc.hash) return undefined;
    const header = info.served;
    if (size <= SMALL_MESSAGE_BYTES) {
      return Readable.from([Buffer.concat([header, readRange(fd, loc.hdrEnd, loc.end)])]);
    }
    const blank = readRange(fd, loc.hdrEnd, Math.min(loc.body, loc.end));
    handedOver = true;
    const body = bodyChunks(fd, loc.body, loc.end);
    return Readable.from(
      (async function* () {
        yield Buffer.concat([header, blank]);
        yield* body;
      })(),
    );
  } finally {
    if (!handedOver) closeSync(fd);
  }
}
