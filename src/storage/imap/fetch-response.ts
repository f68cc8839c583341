/**
 * Untagged FETCH answers, read from imapflow's parse tree by hand (its fetch() does not ask for
 * what we need, see imap-fetch.ts). Whatever shape the server sends, these give a value or
 * nothing; a number that is not one becomes 0, which no UID is.
 */
import type { RawAttribute, RawUntagged } from './imap-session.js';
import { parseInternalDate } from './internal-date.js';
import { usableServerGuid } from './server-guid.js';

export interface FetchedMeta {
  uid: number;
  flags: string[];
  /** The server's MODSEQ, when CONDSTORE is on. */
  modseq?: number;
  size: number;
  internalDate: number;
  /** Only one that can serve as a GUID (server-guid.ts). */
  xGuid?: string;
  /** An X-GUID the server sent that cannot serve as one. */
  unusableXGuid?: string;
  /** The Date and Message-ID header lines, when asked for. */
  header?: Buffer;
}

function pairs(u: RawUntagged): RawAttribute[] {
  const list = u?.attributes?.[1];
  return Array.isArray(list) ? list : [];
}

export function attrText(a: unknown): string {
  const v = (a as RawAttribute | undefined)?.value;
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  return typeof v === 'string' ? v : '';
}

/** NIL (and anything that is not a string) is an empty body: the size check then says so. */
function attrBytes(a: unknown): Buffer {
  const v = (a as RawAttribute | undefined)?.value;
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v);
  return Buffer.from(typeof v === 'string' ? v : '', 'latin1');
}

/** A non-negative integer a server sent, or 0. */
function count(s: string): number {
  const n = /^\d{1,15}$/.test(s) ? Number(s) : 0;
  return Number.isSafeInteger(n) ? n : 0;
}

export function parseFetchMeta(u: RawUntagged): FetchedMeta | undefined {
  const list = pairs(u);
  const m: FetchedMeta = { uid: 0, flags: [], size: 0, internalDate: 0 };
  for (let i = 0; i + 1 < list.length; i += 2) {
    const key = attrText(list[i]).toUpperCase();
    const val: unknown = list[i + 1];
    if (key === 'UID') m.uid = count(attrText(val));
    else if (key === 'FLAGS') m.flags = (Array.isArray(val) ? val : []).map(attrText).filter((f) => f !== '' && f !== '\\Recent');
    else if (key === 'MODSEQ') m.modseq = count(attrText(Array.isArray(val) ? val[0] : val));
    else if (key === 'RFC822.SIZE') m.size = count(attrText(val));
    else if (key === 'INTERNALDATE') m.internalDate = parseInternalDate(attrText(val));
    else if (key === 'X-GUID') {
      const guid = attrText(val);
      if (usableServerGuid(guid)) m.xGuid = guid;
      else m.unusableXGuid = guid;
    }
    else if (key === 'BODY' || key.startsWith('BODY[')) m.header = attrBytes(val);
  }
  return m.uid > 0 ? m : undefined;
}

export function parseFetchBody(u: RawUntagged): { uid: number; body: Buffer } | undefined {
  const list = pairs(u);
  let uid = 0;
  let body: Buffer | undefined;
  for (let i = 0; i + 1 < list.length; i += 2) {
    const key = attrText(list[i]).toUpperCase();
    if (key === 'UID') uid = count(attrText(list[i + 1]));
    else if (key === 'BODY' || key === 'BODY[]') body = attrBytes(list[i + 1]);
  }
  return uid > 0 && body ? { uid, body } : undefined;
}

/** The UID sets of a VANISHED answer, `(EARLIER)` left out. */
export function vanishedSets(u: RawUntagged): string[] {
  const attrs: unknown[] = Array.isArray(u?.attributes) ? u.attributes : [];
  return attrs.filter((a) => !Array.isArray(a)).map(attrText);
}
