/**
 * A decoder for the untagged FETCH answers of our own bulk FETCHes (metadata and bodies), run
 * before imapflow's general parser: that parser reads a response a character at a time into
 * tokens, and on a corpus migration it was a fifth of the client's CPU. This one walks the bytes
 * once and gives the parse tree fetch-response.ts reads (the tree imapflow gives for these
 * answers, keys with their section written out whole: `BODY[]`, `BODY[HEADER.FIELDS (…)]`).
 *
 * It takes only what a FETCH answer is made of (RFC 3501 msg-att): atoms, numbers, quoted
 * strings, NIL, lists and literals, at most MAX_DEPTH lists deep. For anything else, or
 * anything malformed, it gives undefined and the line goes to imapflow's parser as before, so
 * it never makes a server's answer mean more than imapflow would. Literals: the framing
 * (imapflow's ImapStream) leaves each `{N}` marker, with its CRLF, in the line and hands the
 * bytes over apart; every marker must match the next literal's length exactly, and every
 * literal must be claimed. Work is linear in the line, with no copy of a literal.
 */
import type { RawAttribute, RawUntagged } from './imap-session.js';

const SP = 0x20;
const LPAREN = 0x28;
const RPAREN = 0x29;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const TILDE = 0x7e;
const LT = 0x3c;
const GT = 0x3e;
const CR = 0x0d;
const LF = 0x0a;

const MAX_DEPTH = 8;
/** No sequence number, literal length or quoted string longer than this is taken here. */
const MAX_DIGITS = 15;

type Node = RawAttribute | Node[] | null;

class Reader {
  at = 0;
  literal = 0;
  constructor(
    readonly b: Buffer,
    readonly literals: readonly Buffer[],
  ) {}
}

/** ATOM-CHAR without brackets: what a key or an atom value may hold here (a flag's `\` is taken apart). */
const ATOM = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) ATOM[c] = 1;
for (const c of [LPAREN, RPAREN, LBRACE, DQUOTE, BACKSLASH, 0x25 /* % */, 0x2a /* * */, RBRACKET, LBRACKET]) ATOM[c] = 0;

function atomChar(c: number): boolean {
  return ATOM[c] === 1;
}

function digits(r: Reader, end: number): number | undefined {
  const start = r.at;
  while (r.at < end && r.b[r.at]! >= 0x30 && r.b[r.at]! <= 0x39) r.at++;
  const n = r.at - start;
  if (n === 0 || n > MAX_DIGITS) return undefined;
  return Number(r.b.toString('latin1', start, r.at));
}

/** `{N}\r\n` (or `~{N}\r\n`) at r.at, claiming the next literal, which must be N bytes. */
function literal(r: Reader): Node | undefined {
  if (r.b[r.at] === TILDE) r.at++;
  if (r.b[r.at] !== LBRACE) return undefined;
  r.at++;
  const n = digits(r, r.b.length);
  if (n === undefined || r.b[r.at] !== RBRACE || r.b[r.at + 1] !== CR || r.b[r.at + 2] !== LF) return undefined;
  r.at += 3;
  const value = r.literals[r.literal];
  if (!value || value.length !== n) return undefined;
  r.literal++;
  return { type: 'LITERAL', value };
}

function quoted(r: Reader): Node | undefined {
  r.at++; // the opening quote
  const start = r.at;
  let escaped = false;
  for (; r.at < r.b.length; r.at++) {
    const c = r.b[r.at]!;
    // 8-bit text is imapflow's to decode, as it always was.
    if (c === CR || c === LF || c === 0 || c >= 0x80) return undefined;
    if (c === BACKSLASH) {
      escaped = true;
      r.at++;
      // The escaped byte is text too: 8-bit or a line end after a backslash is imapflow's as well.
      const next = r.b[r.at];
      if (next === undefined || next === CR || next === LF || next === 0 || next >= 0x80) return undefined;
      continue;
    }
    if (c === DQUOTE) {
      let s = r.b.toString('latin1', start, r.at);
      r.at++;
      if (escaped) s = s.replace(/\\(.)/g, '$1');
      return { type: 'STRING', value: s };
    }
  }
  return undefined;
}

function atom(r: Reader): string | undefined {
  const start = r.at;
  if (r.b[r.at] === BACKSLASH) r.at++; // a system flag, or \*
  while (r.at < r.b.length && atomChar(r.b[r.at]!)) r.at++;
  if (r.b[r.at - 1] === BACKSLASH && r.b[r.at] === 0x2a) r.at++;
  return r.at > start ? r.b.toString('latin1', start, r.at) : undefined;
}

function value(r: Reader, depth: number): Node | undefined {
  const c = r.b[r.at];
  if (c === LPAREN) return list(r, depth + 1);
  if (c === DQUOTE) return quoted(r);
  if (c === LBRACE || c === TILDE) return literal(r);
  const a = atom(r);
  if (a === undefined) return undefined;
  return a === 'NIL' ? null : { type: 'ATOM', value: a };
}

function list(r: Reader, depth: number): Node[] | undefined {
  if (depth > MAX_DEPTH) return undefined;
  r.at++; // (
  const out: Node[] = [];
  for (;;) {
    if (r.b[r.at] === RPAREN) {
      r.at++;
      return out;
    }
    if (out.length > 0) {
      if (r.b[r.at] !== SP) return undefined;
      r.at++;
    }
    const v = value(r, depth);
    if (v === undefined) return undefined;
    out.push(v);
  }
}

/** A msg-att name: an atom, then `[section]` and `<origin>` when there. */
function key(r: Reader): string | undefined {
  const start = r.at;
  while (r.at < r.b.length && atomChar(r.b[r.at]!)) r.at++;
  if (r.at === start) return undefined;
  if (r.b[r.at] === LBRACKET) {
    // Only a body has sections in an answer (BODY[…], BINARY[…]).
    const name = r.b.toString('latin1', start, r.at).toUpperCase();
    if (name !== 'BODY' && name !== 'BINARY') return undefined;
    // A section holds atoms, numbers, spaces and one list of header names, nothing else.
    let depth = 0;
    for (r.at++; r.at < r.b.length && r.b[r.at] !== RBRACKET; r.at++) {
      const c = r.b[r.at]!;
      if (c === LPAREN) {
        if (++depth > 1) return undefined;
      } else if (c === RPAREN) {
        if (--depth < 0) return undefined;
      } else if (c !== SP && !atomChar(c)) return undefined;
    }
    if (r.b[r.at] !== RBRACKET || depth !== 0) return undefined;
    r.at++;
    if (r.b[r.at] === LT) {
      r.at++;
      if (digits(r, r.b.length) === undefined || r.b[r.at] !== GT) return undefined;
      r.at++;
    }
  }
  return r.b.toString('latin1', start, r.at);
}

const PREFIX = Buffer.from('* ');
const FETCH = Buffer.from(' FETCH (');

/**
 * The parse tree of `* N FETCH (…)` as ImapStream frames it (`payload` without its final CRLF,
 * `literals` in order), or undefined when it is not one this decoder takes whole.
 */
export function decodeFetchLine(payload: Buffer, literals: readonly Buffer[]): RawUntagged | undefined {
  if (payload.length < 12 || payload[0] !== PREFIX[0] || payload[1] !== PREFIX[1]) return undefined;
  const r = new Reader(payload, literals);
  r.at = 2;
  const seq = digits(r, payload.length);
  if (seq === undefined || payload.compare(FETCH, 0, FETCH.length, r.at, r.at + FETCH.length) !== 0) return undefined;
  const seqText = payload.toString('latin1', 2, r.at);
  r.at += FETCH.length;
  const items: Node[] = [];
  for (;;) {
    if (payload[r.at] === RPAREN) {
      r.at++;
      break;
    }
    if (items.length > 0) {
      if (payload[r.at] !== SP) return undefined;
      r.at++;
    }
    const k = key(r);
    if (k === undefined || payload[r.at] !== SP) return undefined;
    r.at++;
    const v = value(r, 1);
    if (v === undefined) return undefined;
    items.push({ type: 'ATOM', value: k }, v);
  }
  // Nothing after the closing parenthesis, and every literal the framing read was claimed.
  if (r.at !== payload.length || r.literal !== literals.length) return undefined;
  return { command: seqText, attributes: [{ type: 'ATOM', value: 'FETCH' }, items as RawAttribute[]] };
}
