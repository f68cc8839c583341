/**
 * IMAP modified UTF-7 (RFC 3501 5.1.3), the encoding Dovecot uses for mailbox
 * names on disk unless the mailbox list is configured for UTF-8.
 *
 * The decoder accepts exactly what Dovecot's imap_utf7_to_utf8() accepts, so a
 * name we can decode is one Dovecot can open, and decoding is one-to-one on
 * the names we accept (apart from non-zero padding bits, which Dovecot also
 * tolerates). Rejected, as in Dovecot: raw bytes outside 0x20..0x7e, encoded
 * NUL, encoded printable ASCII, two shifted runs back to back, odd byte
 * counts and unpaired surrogates.
 */
import { dataError } from './errors.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,';
const DECODE = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]));

const isDirect = (code: number) => code >= 0x20 && code <= 0x7e;

function base64Run(units: number[]): string {
  const bytes: number[] = [];
  for (const u of units) bytes.push(u >> 8, u & 0xff);
  let out = '&';
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out + '-';
}

/**
 * Encodes a Unicode mailbox name. Throws on a lone surrogate or NUL: Dovecot
 * works on NUL-terminated UTF-8, so neither can be part of a real name.
 */
export function encodeMutf7(s: string): string {
  let out = '';
  let run: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (isDirect(code)) {
      if (run.length > 0) {
        out += base64Run(run);
        run = [];
      }
      out += code === 0x26 ? '&-' : s[i];
      continue;
    }
    if (code === 0) throw dataError('mailbox name contains a NUL character');
    if (code >= 0xd800 && code <= 0xdbff) {
      const low = s.charCodeAt(i + 1);
      if (!(low >= 0xdc00 && low <= 0xdfff)) {
        throw dataError(`mailbox name has an unpaired UTF-16 surrogate at position ${i}`);
      }
      run.push(code, low);
      i++;
      continue;
    }
    if (code >= 0xdc00 && code <= 0xdfff) {
      throw dataError(`mailbox name has an unpaired UTF-16 surrogate at position ${i}`);
    }
    run.push(code);
  }
  if (run.length > 0) out += base64Run(run);
  return out;
}

function invalid(s: string, why: string): Error {
  return dataError(`invalid modified UTF-7 mailbox name ${JSON.stringify(s)}: ${why}`);
}

/** Decodes the base64 part of a shifted run (between '&' and '-') into UTF-16 units. */
function decodeRun(s: string, chars: string): string {
  if (chars.length % 4 === 1) throw invalid(s, 'truncated base64 run');
  const bytes: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const c of chars) {
    acc = ((acc << 6) | DECODE.get(c)!) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((acc >> bits) & 0xff);
    }
  }
  if (bytes.length % 2 !== 0) throw invalid(s, 'base64 run does not hold whole UTF-16 units');
  let out = '';
  for (let i = 0; i < bytes.length; i += 2) {
    const unit = (bytes[i]! << 8) | bytes[i + 1]!;
    if (unit === 0) throw invalid(s, 'encoded NUL');
    if (unit >= 0xdc00 && unit <= 0xdfff) throw invalid(s, 'unpaired low surrogate');
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const low = i + 3 < bytes.length ? (bytes[i + 2]! << 8) | bytes[i + 3]! : -1;
      if (!(low >= 0xdc00 && low <= 0xdfff)) throw invalid(s, 'unpaired high surrogate');
      out += String.fromCharCode(unit, low);
      i += 2;
      continue;
    }
    // Printable ASCII must be written directly, else two spellings would name one mailbox.
    if (isDirect(unit)) throw invalid(s, 'printable ASCII inside a base64 run');
    out += String.fromCharCode(unit);
  }
  return out;
}

export function decodeMutf7(s: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (!isDirect(c.charCodeAt(0))) throw invalid(s, `character outside printable ASCII at position ${i}`);
    if (c !== '&') {
      out += c;
      i++;
      continue;
    }
    if (s[i + 1] === '-') {
      out += '&';
      i += 2;
      continue;
    }
    let j = i + 1;
    while (j < s.length && DECODE.has(s[j]!)) j++;
    if (j >= s.length) throw invalid(s, `unterminated '&' run at position ${i}`);
    if (s[j] !== '-') throw invalid(s, `bad base64 character at position ${j}`);
    out += decodeRun(s, s.slice(i + 1, j));
    i = j + 1;
    if (s[i] === '&' && s[i + 1] !== '-') throw invalid(s, `needless shift at position ${i}`);
  }
  return out;
}
