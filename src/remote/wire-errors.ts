/**
 * Errors across the wire: a store error keeps its kind (so a far permission problem is exit 77
 * here and a missing mailbox 65) and its message, to which the receiving side puts the name
 * of the peer in front.
 */
import { MailferryError, type ErrorKind } from '../model/errors.js';
import { ProtocolError } from './protocol-error.js';
import { object, str } from './wire-check.js';

const KINDS: readonly ErrorKind[] = ['usage', 'data', 'notfound', 'exists', 'tempfail', 'permission', 'config', 'nouser'];
const MAX_MESSAGE = 4000;

/** An error the peer reported (its store's), as opposed to one of the connection. */
export class PeerError extends MailferryError {}

export function encodeError(err: unknown): Buffer {
  const e =
    err instanceof MailferryError
      ? { kind: err.kind, message: err.message }
      : { kind: 'tempfail', message: `internal error: ${(err as Error)?.message ?? String(err)}` };
  return Buffer.from(JSON.stringify({ kind: e.kind, message: e.message.slice(0, MAX_MESSAGE) }));
}

export function decodeError(payload: Buffer, label: string, what: string): MailferryError {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError(`${what}: an error that is not valid JSON`);
  }
  const o = object(v, `${what} error`);
  const message = str(MAX_MESSAGE)(o.message, `${what} error.message`);
  // A kind a newer peer invented is still an error; it is one to retry.
  const kind = typeof o.kind === 'string' && (KINDS as readonly string[]).includes(o.kind) ? (o.kind as ErrorKind) : 'tempfail';
  // eslint-disable-next-line no-control-regex
  return new PeerError(kind, `${label}: ${message.replace(/[\u0000-\u001f\u007f]+/g, ' ')}`);
}
