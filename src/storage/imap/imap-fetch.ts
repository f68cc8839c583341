/**
 * UID FETCH through imapflow's command primitive, for what its fetch() does not ask for:
 * Dovecot's X-GUID, CHANGEDSINCE with VANISHED in one round trip, and header fields and
 * bodies of many messages in one command. The answers are decoded by fetch-line.ts where it
 * takes them (fast-fetch.ts), by imapflow's parser otherwise.
 */
import type { ImapFlow } from 'imapflow';
import { sizeError, sizeProblem, wireCap } from './body-size.js';
import { fastFetch } from './fast-fetch.js';
import { parseFetchBody, parseFetchMeta, vanishedSets, type FetchedMeta } from './fetch-response.js';
import { raw, type RawAttribute } from './imap-session.js';
import { countCrlf } from './line-ends.js';
import { capLiterals } from './literal-cap.js';
import { parseUidSet } from './uid-set.js';

export type { FetchedMeta } from './fetch-response.js';
// Where these lived before they had a file of their own.
export { formatInternalDate, parseInternalDate } from './internal-date.js';

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

/** Metadata of the messages in `set` (a UID set or `1:*`) in the selected mailbox. */
/** `duplicates`: answers left out because an earlier one had the same UID. */
export async function fetchMeta(client: ImapFlow, set: string, q: MetaQuery): Promise<{ messages: FetchedMeta[]; vanished: number[]; duplicates: number }> {
  const items: RawAttribute[] = [atom('UID'), atom('FLAGS'), atom('RFC822.SIZE'), atom('INTERNALDATE')];
  if (q.condstore) items.push(atom('MODSEQ'));
  if (q.xGuid) items.push(atom('X-GUID'));
  if (q.headers) items.push(headerFields());
  const attrs: unknown[] = [{ type: 'SEQUENCE', value: set }, items];
  if (q.changedSince !== undefined) {
    attrs.push([atom('CHANGEDSINCE'), atom(String(q.changedSince)), ...(q.vanished ? [atom('VANISHED')] : [])]);
  }
  const messages: FetchedMeta[] = [];
  const seen = new Set<number>();
  let duplicates = 0;
  const vanished: number[] = [];
  const r = await raw(client).exec('UID FETCH', attrs, {
    untagged: {
      FETCH: fastFetch(client, (u) => {
        const m = parseFetchMeta(u);
        if (!m) return;
        // A server whose index is broken lists two messages under one UID. A UID names one
        // message here, so the first answer is the one kept, in metadata and bodies alike.
        if (seen.has(m.uid)) duplicates++;
        else {
          seen.add(m.uid);
          messages.push(m);
        }
      }),
      VANISHED: (u) => {
        for (const s of vanishedSets(u)) vanished.push(...parseUidSet(s));
      },
    },
  });
  r.next();
  return { messages, vanished, duplicates };
}

export interface FetchedBodies {
  /** Server UID -> the body as sent (CRLF), or why it is not the message the index knows. */
  bodies: Map<number, Buffer | Error>;
  /** False when the connection was dropped part way: the UIDs not in `bodies` were not answered. */
  complete: boolean;
}

/**
 * Whole messages by server UID, in one command, each checked against the size the index holds
 * for it (`sizes`: server UID -> size). No literal larger than the largest of those (allowing
 * for line ends) is read at all (literal-cap.ts), and a body that does not fit its own is
 * dropped as it arrives, so what is held follows the sizes, not what the server chose to send.
 * `where` names the account and mailbox in errors.
 */
export async function fetchBodies(client: ImapFlow, sizes: ReadonlyMap<number, number>, set: string, where: string): Promise<FetchedBodies> {
  const bodies = new Map<number, Buffer | Error>();
  if (sizes.size === 0) return { bodies, complete: true };
  let largest = 0;
  for (const s of sizes.values()) largest = Math.max(largest, wireCap(s));
  const cap = capLiterals(client, largest);
  try {
    const r = await raw(client).exec('UID FETCH', [{ type: 'SEQUENCE', value: set }, [atom('UID'), { type: 'ATOM', value: 'BODY.PEEK', section: [] }]], {
      onSend: cap.onSend,
      untagged: {
        FETCH: fastFetch(client, (u) => {
          const got = parseFetchBody(u);
          const size = got && sizes.get(got.uid);
          // The first answer per UID, as in fetchMeta.
          if (!got || size === undefined || bodies.has(got.uid)) return;
          const problem = sizeProblem(size, got.body.length, got.body.length - countCrlf(got.body));
          bodies.set(got.uid, problem ? sizeError(where, got.uid, problem) : got.body);
        }),
      },
    });
    r.next();
  } catch (err) {
    if (!cap.exceeded()) throw err;
    // Servers answer a FETCH in UID order: the literal refused was the first one not answered.
    const uid = [...sizes.keys()].sort((a, b) => a - b).find((u) => !bodies.has(u));
    if (uid !== undefined) bodies.set(uid, sizeError(where, uid, `the server announced ${sizes.get(uid)} bytes and sent more`));
    return { bodies, complete: false };
  } finally {
    cap.release();
  }
  return { bodies, complete: true };
}
