/**
 * The largest literal imapflow will take in, lowered while a body FETCH is answered. imapflow
 * buffers a literal whole before handing it over, at whatever size the server's `{N}` says;
 * its cap is per connection, so it is set when our FETCH goes on the wire (imapflow sends one
 * command at a time, and every literal that follows belongs to it) and put back when it ends,
 * unless a later FETCH has set its own by then. A literal over the cap makes imapflow drop the
 * connection before reading it: memory follows what the index says the messages hold.
 */
import type { ImapFlow } from 'imapflow';

/** Outside body FETCHes: header fields, download() chunks (64 KB), nothing large. */
export const CONNECTION_LITERAL_CAP = 64 * 1024 * 1024;

interface Streamer {
  maxLiteralSize: number;
  errored?: { code?: string } | null;
}

const owner = new WeakMap<object, symbol>();

function streamerOf(client: ImapFlow): Streamer | undefined {
  const s = (client as unknown as { streamer?: Streamer }).streamer;
  return s && typeof s.maxLiteralSize === 'number' ? s : undefined;
}

export interface LiteralCap {
  /** For exec's onSend: the command is on the wire now. */
  onSend(): void;
  release(): void;
  /** The connection was dropped because a literal was over the cap. */
  exceeded(): boolean;
}

export function capLiterals(client: ImapFlow, bytes: number): LiteralCap {
  const me = Symbol('literal cap');
  const streamer = streamerOf(client);
  return {
    onSend() {
      if (!streamer) return;
      owner.set(streamer, me);
      streamer.maxLiteralSize = Math.max(0, Math.ceil(bytes));
    },
    release() {
      if (!streamer || owner.get(streamer) !== me) return;
      owner.delete(streamer);
      streamer.maxLiteralSize = CONNECTION_LITERAL_CAP;
    },
    exceeded: () => streamer?.errored?.code === 'LiteralTooLarge',
  };
}
