/**
 * What the server and a session process say to each other over the IPC channel; the mail
 * itself travels on a socket of its own, the session's fd 4.
 */
import type { Settings } from '../config/settings.js';
import type { ErrorKind } from '../model/errors.js';
import type { ServedAccount } from './accounts.js';

/** The session's end of the client's relayed connection. */
export const SESSION_FD = 4;

export interface ServeMessage {
  type: 'serve';
  account: ServedAccount;
  settings: Settings;
  /** Names the client in the session's messages: `client 127.0.0.1:40112 (user alice)`. */
  label: string;
  compress: boolean;
}

/** What a session did, for its log line. */
export interface SessionCounts {
  requests: number;
  saved: number;
  sent: number;
  flagUpdates: number;
  expunged: number;
  mailboxChanges: number;
}

export type SessionReport =
  | { type: 'ready' }
  | { type: 'refused'; kind: ErrorKind; message: string }
  | { type: 'done'; counts: SessionCounts; error?: string };

export function noCounts(): SessionCounts {
  return { requests: 0, saved: 0, sent: 0, flagUpdates: 0, expunged: 0, mailboxChanges: 0 };
}
