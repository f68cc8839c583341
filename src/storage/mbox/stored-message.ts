/**
 * How a message to save is laid out in the mbox: its header (with lines that would be misread
 * escaped, and mailferry's own hidden lines), then the metadata block, then the empty line and
 * the body. The served message, with the hidden lines removed and escapes undone, is the
 * original byte for byte.
 */
import { escapeHeader } from './message-header.js';
import { needsEscape } from './mbox-headers.js';

/** Where the empty line after the header starts and how long it is; undefined when there is none in `buf`. */
export function findHeaderEnd(buf: Buffer): { headerEnd: number; blank: number } | undefined {
  if (buf[0] === 10) return { headerEnd: 0, blank: 1 };
  if (buf[0] === 13 && buf[1] === 10) return { headerEnd: 0, blank: 2 };
  const lf = buf.indexOf('\n\n');
  const crlf = buf.indexOf('\n\r\n');
  if (lf < 0 && crlf < 0) return undefined;
  if (crlf < 0 || (lf >= 0 && lf < crlf)) return { headerEnd: lf + 1, blank: 1 };
  return { headerEnd: crlf + 1, blank: 2 };
}

/**
 * A message with no empty line after its header (within the first bytes looked at) is stored
 * whole as the body of an empty header marked `X-Mailferry-Shape: body-only`: its bytes are then
 * covered by Content-Length and need no escaping, however long it is.
 */
export const BODY_ONLY = 'body-only';

/** Only this much of a body-only message counts as its header for the header hash (as read-header.ts reads). */
export const HASHED_PREFIX_BYTES = 256 * 1024;

/** The stored header lines for `header` (the bytes before the empty line), or for a body-only message when undefined. */
export function storedHeader(header: Buffer | undefined, opts: { guid?: string }): Buffer {
  const parts: Buffer[] = header ? [escapeHeader(header, needsEscape)] : [Buffer.from(`X-Mailferry-Shape: ${BODY_ONLY}\n`)];
  if (opts.guid !== undefined) parts.push(Buffer.from(`X-Mailferry-GUID: ${opts.guid}\n`));
  return Buffer.concat(parts);
}

/** A GUID can be written in a header when it is printable ASCII without spaces. */
export function writableGuid(guid: string): boolean {
  return /^[\x21-\x7e]{1,200}$/.test(guid);
}
