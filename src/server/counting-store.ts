/**
 * A store that counts what a session did with it, for the session's log line. Everything else
 * passes through untouched (optional methods stay absent when the store lacks them, so the
 * client sees the same capabilities).
 */
import type { MailStore } from '../storage/store.js';
import type { SessionCounts } from './session-messages.js';

const MAILBOX_CHANGES = new Set(['createMailbox', 'renameMailbox', 'deleteMailbox', 'updateMailbox', 'setSubscribed']);

export function countingStore(store: MailStore, counts: SessionCounts): MailStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || prop === 'close' || prop === 'mailboxNameProblem') return value;
      const fn = value as (...args: unknown[]) => unknown;
      return async (...args: unknown[]) => {
        counts.requests++;
        const result = await fn.apply(target, args);
        if (prop === 'saveMessages') counts.saved += (result as unknown[]).length;
        else if (prop === 'openMessage') counts.sent++;
        else if (prop === 'updateFlags') counts.flagUpdates += (args[1] as unknown[]).length;
        else if (prop === 'expunge') counts.expunged += (args[1] as unknown[]).length;
        else if (typeof prop === 'string' && MAILBOX_CHANGES.has(prop)) counts.mailboxChanges++;
        return result;
      };
    },
  });
}
