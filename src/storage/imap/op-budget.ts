/**
 * How `-T SECS` bounds the time spent waiting for a server. A timer that each byte resets is
 * not enough (a server sending a byte every 2 s would never trip it), and retrying a stalled
 * command five times would turn `-T 600` into 50 minutes. So:
 * - a command that has not completed within half of SECS (since it was sent, or since the
 *   command before it on the connection completed) is taken as stalled: the connection is
 *   dropped and the operation retried on a new one (CommandWatch);
 * - an operation gets SECS without a completed command, all its retries and their backoff
 *   included; once it has failed once, nothing completing on the new connection gives it
 *   more, so the retries share what is left (OpBudget). When that is spent the run fails
 *   (exit 75).
 * A healthy operation that keeps completing commands is never cut, however long it runs.
 */
import type { ImapFlow } from 'imapflow';

export class OpBudget {
  private last: number;
  private failed = false;

  constructor(
    private readonly ms: number,
    private readonly now: () => number = Date.now,
  ) {
    this.last = now();
  }

  /** A command of the operation completed. */
  progress(): void {
    if (!this.failed) this.last = this.now();
  }

  /** An attempt failed: from here on the operation lives on what is left. */
  fail(): void {
    this.failed = true;
  }

  left(): number {
    return this.last + this.ms - this.now();
  }

  spent(): boolean {
    return this.left() <= 0;
  }
}

/** Commands in flight on one connection, and when one last moved. */
export class CommandWatch {
  private inFlight = 0;
  private lastMove: number;

  constructor(
    client: ImapFlow,
    onComplete: () => void,
    private readonly now: () => number = Date.now,
  ) {
    this.lastMove = now();
    const c = client as unknown as { exec: (...args: unknown[]) => Promise<unknown> };
    const exec = c.exec.bind(client);
    // Every command imapflow sends, its own included, goes through exec.
    c.exec = (...args: unknown[]) => {
      if (this.inFlight++ === 0) this.lastMove = this.now();
      const settle = (ok: boolean) => {
        this.inFlight--;
        this.lastMove = this.now();
        if (ok) onComplete();
      };
      const p = exec(...args);
      p.then(() => settle(true), () => settle(false));
      return p;
    };
  }

  /** A command has waited longer than `ms` with nothing completing. */
  stalled(ms: number): boolean {
    return this.inFlight > 0 && this.now() - this.lastMove > ms;
  }
}
