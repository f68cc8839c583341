/**
 * Failed authentications, counted per client address: after `threshold` failures the next
 * attempts from that address wait before they get a challenge, 1 second after the first
 * failure past the threshold, doubling up to `maxSeconds`. An address is forgotten after a
 * quiet quarter of an hour or a success. The table has a bounded size: the addresses whose last
 * failure is oldest go first.
 */
export interface BackoffSettings {
  threshold: number;
  maxSeconds: number;
}

interface Entry {
  failures: number;
  last: number;
}

export const FORGET_AFTER_MS = 15 * 60_000;
const MAX_ENTRIES = 100_000;

export class AuthBackoff {
  private readonly entries = new Map<string, Entry>();
  /** Every failure since the server started. */
  totalFailures = 0;

  constructor(
    private settings: BackoffSettings,
    private readonly now: () => number = Date.now,
  ) {}

  setSettings(settings: BackoffSettings): void {
    this.settings = settings;
  }

  private entry(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e && this.now() - e.last > FORGET_AFTER_MS) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  /** Failures recorded for this address (still remembered). */
  failuresOf(key: string): number {
    return this.entry(key)?.failures ?? 0;
  }

  /** Milliseconds the next attempt from this address waits. */
  delayFor(key: string): number {
    const { threshold, maxSeconds } = this.settings;
    if (threshold === 0) return 0;
    const past = this.failuresOf(key) - threshold;
    if (past < 0) return 0;
    return Math.min(maxSeconds, 2 ** Math.min(past, 30)) * 1000;
  }

  /** Records a failure; returns the address's count. */
  failed(key: string): number {
    this.totalFailures++;
    const e = this.entry(key) ?? { failures: 0, last: 0 };
    e.failures++;
    e.last = this.now();
    // Re-inserted, so the map's order is the order of last failures.
    this.entries.delete(key);
    this.entries.set(key, e);
    if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    return e.failures;
  }

  succeeded(key: string): void {
    this.entries.delete(key);
  }

  /** Addresses being slowed down now. */
  get slowedAddresses(): number {
    let n = 0;
    for (const key of [...this.entries.keys()]) if (this.delayFor(key) > 0) n++;
    return n;
  }
}
