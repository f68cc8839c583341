/**
 * Sees each delivered message arrive in its replica: the time from the delivery returning (the
 * rename into new/, or LMTP's 250 to DATA) to the replica's INBOX holding one more message
 * (new/ + cur/). inotify watches on the replica INBOXes of users with a message in flight give
 * the moment a file lands; a 20 ms poll backs them up. Each user has at most one message in
 * flight (the stream visits every user once before any twice), so "one more" is that message.
 * The probe runs in the benchmark's own process, outside both tools' CPU groups.
 */
import { readdirSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';

export interface Arrival { seq: number; user: string; latencyMs: number | undefined }

interface Pending { seq: number; user: string; inbox: string; base: number; at: number; watchers: FSWatcher[] }

/** Messages in a Maildir folder (new/ and cur/), 0 while it does not exist. */
export function countMessages(folder: string): number {
  let n = 0;
  for (const sub of ['new', 'cur']) {
    try {
      n += readdirSync(join(folder, sub)).length;
    } catch { /* not made yet */ }
  }
  return n;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

export class ArrivalProbe {
  private readonly pending = new Map<string, Pending>();
  readonly arrivals: Arrival[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number, private readonly onSettle: (a: Arrival) => void = () => {}) {
    this.timer = setInterval(() => this.poll(), 20);
  }

  /** Call when the delivery returned; `base` is the replica INBOX's count from just before it began. */
  delivered(seq: number, user: string, inbox: string, base: number): void {
    const p: Pending = { seq, user, inbox, base, at: now(), watchers: [] };
    this.pending.set(user, p);
    for (const sub of ['new', 'cur']) {
      try {
        p.watchers.push(watch(join(inbox, sub), () => this.check(p)));
      } catch { /* not made yet: the poll sees it */ }
    }
    this.check(p);
  }

  /** Call when a delivery failed: nothing is expected. */
  failed(seq: number, user: string): void {
    const a = { seq, user, latencyMs: undefined };
    this.arrivals.push(a);
    this.onSettle(a);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private check(p: Pending): void {
    if (this.pending.get(p.user) !== p) return;
    const t = now();
    if (countMessages(p.inbox) > p.base) this.settle(p, t - p.at);
    else if (t - p.at > this.timeoutMs) this.settle(p, undefined);
  }

  private settle(p: Pending, latencyMs: number | undefined): void {
    this.pending.delete(p.user);
    for (const w of p.watchers) w.close();
    const a = { seq: p.seq, user: p.user, latencyMs };
    this.arrivals.push(a);
    this.onSettle(a);
  }

  private poll(): void {
    for (const p of [...this.pending.values()]) this.check(p);
  }

  close(): void {
    clearInterval(this.timer);
    for (const p of this.pending.values()) for (const w of p.watchers) w.close();
  }
}
