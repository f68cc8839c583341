/**
 * Hands the untagged FETCH answers of our bulk FETCHes to fetch-line.ts's decoder instead of
 * imapflow's parser. imapflow still frames the responses (lines and literals, with its size
 * caps), settles the command and handles everything else; only a FETCH answer to a command
 * whose FETCH handler was registered here, and that the decoder takes whole, skips imapflow's
 * parser. What it does not take goes to imapflow as before. Where imapflow's internals are not
 * the ones this was written against, nothing is changed.
 */
import type { ImapFlow } from 'imapflow';
import { decodeFetchLine } from './fetch-line.js';
import type { RawUntagged } from './imap-session.js';

type Handler = (u: RawUntagged) => Promise<void> | void;

interface Framed {
  payload: Buffer;
  literals: Buffer[];
}

/** What imapflow 2.x's response handling works with. */
interface Internals {
  handleResponse(data: Framed): Promise<boolean>;
  currentRequest?: { options?: { untagged?: Record<string, unknown> } } | null;
}

const fast = new WeakSet<Handler>();
const hooked = new WeakSet<object>();
/** Answers decoded here, per connection: what shows this path is taken. */
const decoded = new WeakMap<object, number>();

function hook(client: Internals): void {
  if (hooked.has(client)) return;
  hooked.add(client);
  const original = client.handleResponse;
  client.handleResponse = async function handleResponse(this: Internals, data: Framed): Promise<boolean> {
    const handler = this.currentRequest?.options?.untagged?.FETCH;
    if (typeof handler === 'function' && fast.has(handler as Handler) && Buffer.isBuffer(data?.payload) && Array.isArray(data.literals)) {
      const u = decodeFetchLine(data.payload, data.literals);
      if (u) {
        decoded.set(this, (decoded.get(this) ?? 0) + 1);
        try {
          await (handler as Handler)(u);
        } catch {
          // As imapflow does: a failing handler does not fail the connection.
        }
        return true;
      }
    }
    return original.call(this, data);
  };
}

/** `handler`, registered so that the FETCH answers it is given skip imapflow's parser on `client`. */
export function fastFetch(client: ImapFlow, handler: Handler): Handler {
  const c = client as unknown as Partial<Internals>;
  if (typeof c.handleResponse !== 'function' || !('currentRequest' in c)) return handler;
  hook(c as Internals);
  fast.add(handler);
  return handler;
}

/** How many FETCH answers on `client` were decoded here rather than by imapflow. */
export function fastFetched(client: ImapFlow): number {
  return decoded.get(client) ?? 0;
}
