/**
 * One connection at a time per mail location: a second connection for the same mail waits,
 * first come first served, until the first ends or its wait (the client's -l) runs out; then it
 * is refused with a temporary failure (75). Keyed by the location, not the name, so two names
 * a userdb maps onto one mailbox tree cannot interleave either.
 */
import { MailferryError, tempError } from '../model/errors.js';

interface Waiter {
  grant(): void;
}

export class UserLocks {
  private readonly held = new Map<string, Waiter[]>();

  get busy(): number {
    return this.held.size;
  }

  /** Resolves to the release function; rejects on timeout or when `signal` aborts. */
  acquire(key: string, waitMs: number, signal: AbortSignal, what: string): Promise<() => void> {
    const queue = this.held.get(key);
    const release = () => {
      const q = this.held.get(key);
      if (!q) return;
      const next = q.shift();
      if (next) next.grant();
      else this.held.delete(key);
    };
    if (signal.aborted) return Promise.reject(gaveUp(signal, what));
    if (!queue) {
      this.held.set(key, []);
      return Promise.resolve(once(release));
    }
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        grant: () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve(once(release));
        },
      };
      const leave = () => {
        const at = queue.indexOf(waiter);
        if (at >= 0) queue.splice(at, 1);
      };
      const onAbort = () => {
        clearTimeout(timer);
        leave();
        reject(gaveUp(signal, what));
      };
      timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        leave();
        reject(tempError(`${what} is being served to another connection; waited ${Math.round(waitMs / 1000)} seconds (-l): try again later`));
      }, waitMs);
      signal.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
    });
  }
}

/** Why a wait ended early: the reason given when it is one of ours, else the connection's end. */
function gaveUp(signal: AbortSignal, what: string): Error {
  return signal.reason instanceof MailferryError ? signal.reason : tempError(`${what}: the connection closed while waiting`);
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
