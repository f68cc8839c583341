/**
 * APPEND of several messages in one command where the server offers MULTIAPPEND (RFC 3502),
 * one per command otherwise; imapflow's append() sends one message per round trip and returns
 * only one UID. Where the server offers LITERAL+ the bodies follow the command without waiting
 * for its "+" (literal-plus.ts). The UIDs come from APPENDUID (UIDPLUS); without it the caller finds the
 * messages through the pending-append journal.
 */
import type { ImapFlow } from 'imapflow';
import { encodeMutf7 } from '../../model/mutf7.js';
import { formatInternalDate } from './internal-date.js';
import { withLiteralPlus } from './literal-plus.js';
import { raw } from './imap-session.js';
import { parseUidSet } from './uid-set.js';

export interface OutgoingMessage {
  /** CRLF line ends. */
  wire: Buffer;
  flags: string[];
  receivedDate: number;
}

/** Server UIDs of the appended messages in order, or undefined without UIDPLUS. */
export async function appendBatch(client: ImapFlow, path: string, items: readonly OutgoingMessage[]): Promise<number[] | undefined> {
  const binary = client.capabilities.has('BINARY');
  const mailbox = client.enabled.has('UTF8=ACCEPT') ? path : encodeMutf7(path);
  const attrs: unknown[] = [{ type: 'STRING', value: mailbox }];
  for (const it of items) {
    attrs.push(
      it.flags.map((f) => ({ type: 'ATOM', value: f })),
      { type: 'STRING', value: formatInternalDate(it.receivedDate) },
      { type: 'LITERAL', value: it.wire, isLiteral8: binary && it.wire.includes(0) },
    );
  }
  withLiteralPlus(client, attrs);
  const r = await raw(client).exec('APPEND', attrs, {});
  const section = r.response.attributes?.[0]?.section;
  r.next();
  return appendUidsOf(section, items.length);
}

/**
 * The UIDs an `[APPENDUID v set]` code gives `count` appended messages. Anything else (no code,
 * another shape, a set of another length) tells us nothing, and the journal finds them: the
 * messages are stored by now, so this must not fail.
 */
export function appendUidsOf(section: unknown, count: number): number[] | undefined {
  if (!Array.isArray(section)) return undefined;
  const value = (i: number): string => {
    const v = (section[i] as { value?: unknown } | undefined)?.value;
    return typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('latin1') : '';
  };
  if (value(0).toUpperCase() !== 'APPENDUID') return undefined;
  try {
    const uids = parseUidSet(value(2), count);
    return uids.length === count ? uids : undefined;
  } catch {
    return undefined;
  }
}

export function canMultiappend(client: ImapFlow): boolean {
  return client.capabilities.has('MULTIAPPEND');
}
