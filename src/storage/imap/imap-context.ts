/** What the IMAP store's parts share: the session, the side index, names and the journal. */
import type { ChangeIndex } from '../index/change-index.js';
import type { ImapNames } from './imap-names.js';
import type { ImapSession } from './imap-session.js';
import type { PendingAppends } from './pending-appends.js';

export interface ImapContext {
  session: ImapSession;
  index: ChangeIndex;
  names: ImapNames;
  pending: PendingAppends;
  warn: (msg: string) => void;
}

/** What we last knew of the server's side of a mailbox (kept as the index's scan fingerprint). */
export interface ServerState {
  /** Server UIDVALIDITY: the server UIDs in the index mean something only while it holds. */
  v: number;
  /** Server UIDNEXT, message count and HIGHESTMODSEQ (0 without CONDSTORE). */
  n: number;
  x: number;
  m: number;
}

export function parseServerState(fp: string | null): ServerState | undefined {
  if (!fp) return undefined;
  try {
    const s = JSON.parse(fp) as ServerState;
    return typeof s.v === 'number' ? s : undefined;
  } catch {
    return undefined;
  }
}
