/**
 * Hashes of a message's Date and Message-ID header lines, in two kinds.
 *
 * `headerHash` is dsync's header hash version 3 (Dovecot's message-header-hash.c): the selected
 * header lines in message order, then the empty line ending the header; spaces removed; bytes
 * below 0x20 (except TAB and LF), bytes 0x7f and above, and `?` all become one `?` per run; MD5,
 * hex; with one deliberate difference, CRLF line ends turned into LF first. It is kept in
 * indexes as the identity of a message at a place (the mbox index's locations, the GUIDs of
 * messages a store first saw without one, journalled IMAP saves of earlier versions), so it
 * never changes: a new value for the same bytes would make every stored message look replaced.
 *
 * `matchingHash` is what pairs one message held by two stores (store.messageHashes), and what
 * finds an appended message again on a server that gives no UIDs for it. Servers rewrite
 * headers they store (GNU mailutils' imap4d folds and spaces them its own way and upper-cases
 * field names in HEADER.FIELDS answers), so it ignores all whitespace, line ends and folding,
 * the case of field names and their order; the field values' bytes are otherwise as in v3.
 */
import { createHash } from 'node:crypto';

export const HASHED_HEADERS: readonly string[] = ['date', 'message-id'];

/** `header` is the message's header block (the bytes before the first empty line, or all of it). */
export function headerHash(header: Uint8Array, names: readonly string[] = HASHED_HEADERS): string {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  const text = Buffer.from(header).toString('latin1').replace(/\r\n/g, '\n');
  const selected: string[] = [];
  let keep = false;
  for (const line of text.split('\n')) {
    if (line === '') break;
    if (line[0] === ' ' || line[0] === '\t') {
      if (keep) selected.push(line);
      continue;
    }
    const colon = line.indexOf(':');
    keep = colon > 0 && wanted.has(line.slice(0, colon).trim().toLowerCase());
    if (keep) selected.push(line);
  }
  const normalized = normalizeV3(selected.join('\n') + (selected.length ? '\n' : '') + '\n');
  return createHash('md5').update(normalized, 'latin1').digest('hex');
}

/** The header hash that survives a server's rewriting of the header; see the top of the file. */
export function matchingHash(header: Uint8Array, names: readonly string[] = HASHED_HEADERS): string {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  const text = Buffer.from(header).toString('latin1');
  const fields: string[] = [];
  let current: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (line === '') break;
    if (line[0] === ' ' || line[0] === '\t') {
      if (current !== undefined) current += line;
      continue;
    }
    if (current !== undefined) fields.push(current);
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
    current = wanted.has(name) ? `${name}:${line.slice(colon + 1)}` : undefined;
  }
  if (current !== undefined) fields.push(current);
  const normalized = fields.map((f) => normalizeV3(f.replace(/[ \t\r\n]+/g, ''))).sort();
  return createHash('md5').update(normalized.map((f) => `${f}\n`).join(''), 'latin1').digest('hex');
}

function normalizeV3(s: string): string {
  let out = '';
  let lastWasQuestion = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x20) continue;
    const odd = (c < 0x20 && c !== 0x09 && c !== 0x0a) || c >= 0x7f || c === 0x3f;
    if (odd) {
      if (!lastWasQuestion) out += '?';
      lastWasQuestion = true;
    } else {
      out += s[i];
      lastWasQuestion = false;
    }
  }
  return out;
}

/** The header block of a message held in memory: everything before the first empty line. */
export function headerBlockOf(message: Uint8Array): Uint8Array {
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const lf = buf.indexOf('\n\n');
  const crlf = buf.indexOf('\r\n\r\n');
  const ends = [lf < 0 ? -1 : lf + 1, crlf < 0 ? -1 : crlf + 2].filter((n) => n >= 0);
  return ends.length ? buf.subarray(0, Math.min(...ends)) : buf;
}

/** The hash of a header with neither Date nor Message-ID: shared by all such messages, so it identifies none. */
export const EMPTY_HEADER_HASH = headerHash(new Uint8Array(0));
export const EMPTY_MATCHING_HASH = matchingHash(new Uint8Array(0));
