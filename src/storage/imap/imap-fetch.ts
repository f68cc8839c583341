/**
 * UID FETCH through imapflow's command primitive, for what its fetch() does not ask for:
 * Dovecot's X-GUID, CHANGEDSINCE with VANISHED in one round trip, and header fields and
 * bodies of many messages in one command.
 */
import type { ImapFlow } from 'imapflow';
import { raw, type RawAttribute, type RawUntagged } from './imap-session.js';
import { parseUidSet } from './uid-set.js';

export interface FetchedMeta {
  uid: number;
  flags: string[];
  /** The server's MODSEQ, when CONDSTORE is on. */
  modseq?: number;
  size: number;
  internalDate: number;
  xGuid?: string;
  /** The Date and Message-ID header lines, when asked for. */
  header?: Buffer;
}

export interface MetaQuery {
  xGuid: boolean;
  headers: boolean;
  condstore: boolean;
  changedSince?: number;
  vanished?: boolean;
}

const atom = (value: string): RawAttribute => ({ type: 'ATOM', value });
const headerFields = (): RawAttribute => ({
  type: 'ATOM',
  value: 'BODY.PEEK',
  section: [atom('HEADER.FIELDS'), [atom('DATE'), atom('MESSAGE-ID')] as unknown as RawAttribute],
});

function pairs(u: RawUntagged): RawAttribute[] {
  const list = u.attributes[1];
  return Array.isArray(list) ? list : [];
}

function text(a: RawAttribute | undefined): string {
  const v = a?.value;
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  return typeof v === 'string' ? v : '';
}

function bytes(a: RawAttribute | undefined): Buffer {
  const v = a?.value;
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v);
  return Buffer.from(typeof v === 'string' ? v : '', 'latin1');
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** `24-Nov-2026 19:13:09 +0000` (day possibly space-padded) -> ms since the epoch. */
export function parseInternalDate(s: string): number {
  const m = /^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s);
  if (!m) return Date.parse(s) || 0;
  const month = MONTHS.indexOf(m[2]!.toLowerCase());
  const utc = Date.UTC(+m[3]!, month, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  const offset = (+m[8]! * 60 + +m[9]!) * 60_000 * (m[7] === '-' ? -1 : 1);
  return utc - offset;
}

export function formatInternalDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  const mon = MONTHS[d.getUTCMonth()]!;
  return `${p(d.getUTCDate())}-${mon[0]!.toUpperCase()}${mon.slice(1)}-${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** Metadata of the messages in `set` (a UID set or `1:*`) in the selected mailbox. */
export async function fetchMeta(client: ImapFlow, set: string, q: MetaQuery): Promise<{ messages: FetchedMeta[]; vanished: number[] }> {
  const items: RawAttribute[] = [atom('UID'), atom('FLAGS'), atom('RFC822.SIZE'), atom('INTERNALDATE')];
  if (q.condstore) items.push(atom('MODSEQ'));
  if (q.xGuid) items.push(atom('X-GUID'));
  if (q.headers) items.push(headerFields());
  const attrs: unknown[] = [{ type: 'SEQUENCE', value: set }, items];
  if (q.changedSince !== undefined) {
    attrs.push([atom('CHANGEDSINCE'), atom(String(q.changedSince)), ...(q.vanished ? [atom('VANISHED')] : [])]);
  }
  const messages: FetchedMeta[] = [];
  const vanished: number[] = [];
  const r = await raw(client).exec('UID FETCH', attrs, {
    untagged: {
      FETCH: (u) => {
        const list = pairs(u);
        const m: FetchedMeta = { uid: 0, flags: [], size: 0, internalDate: 0 };
        for (let i = 0; i + 1 < list.length; i += 2) {
          const key = text(list[i]).toUpperCase();
          const val = list[i + 1]!;
          if (key === 'UID') m.uid = Number(text(val));
          else if (key === 'FLAGS') m.flags = (Array.isArray(val) ? (val as RawAttribute[]) : []).map(text).filter((f) => f !== '\\Recent');
          else if (key === 'MODSEQ') m.modseq = Number(text(Array.isArray(val) ? (val as RawAttribute[])[0] : val));
          else if (key === 'RFC822.SIZE') m.size = Number(text(val));
          else if (key === 'INTERNALDATE') m.internalDate = parseInternalDate(text(val));
          else if (key === 'X-GUID') m.xGuid = text(val);
          else if (key === 'BODY' || key.startsWith('BODY[')) m.header = bytes(val);
        }
        if (m.uid > 0) messages.push(m);
      },
      VANISHED: (u) => {
        for (const a of u.attributes) {
          if (Array.isArray(a)) continue; // (EARLIER)
          vanished.push(...parseUidSet(text(a)));
        }
      },
    },
  });
  r.next();
  return { messages, vanished };
}

/** Whole messages by UID, in one command (bodies are held in memory: keep `uids` small). */
export async function fetchBodies(client: ImapFlow, uids: readonly number[], set: string): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  if (uids.length === 0) return out;
  const r = await raw(client).exec('UID FETCH', [{ type: 'SEQUENCE', value: set }, [atom('UID'), { type: 'ATOM', value: 'BODY.PEEK', section: [] }]], {
    untagged: {
      FETCH: (u) => {
        const list = pairs(u);
        let uid = 0;
        let body: Buffer | undefined;
        for (let i = 0; i + 1 < list.length; i += 2) {
          const key = text(list[i]).toUpperCase();
          if (key === 'UID') uid = Number(text(list[i + 1]));
          else if (key === 'BODY' || key === 'BODY[]') body = bytes(list[i + 1]);
        }
        if (uid > 0 && body) out.set(uid, body);
      },
    },
  });
  r.next();
  return out;
}
