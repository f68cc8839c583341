/**
 * What the status page remembers of the syncs since the replicator started: the last few, newest
 * first, and totals by result. Bounded whatever the number of users or syncs.
 */
import type { SyncReport } from './sync-report.js';

export const RECENT_SYNCS = 50;

export interface RecentSync {
  /** When it ended (ms since the epoch). */
  at: number;
  user: string;
  full: boolean;
  priority: SyncReport['priority'];
  result: SyncReport['result'];
  ms: number;
  saved?: number;
  bytes?: number;
  error?: string;
}

export interface SyncTotals {
  syncs: number;
  byResult: Record<SyncReport['result'], number>;
  messages: number;
  bytes: number;
}

export class SyncHistory {
  private readonly ring: RecentSync[] = [];
  private readonly counts: SyncTotals = { syncs: 0, byResult: { ok: 0, again: 0, incomplete: 0, failed: 0, gone: 0 }, messages: 0, bytes: 0 };
  readonly startedAt: number;

  constructor(
    now = Date.now(),
    private readonly keep = RECENT_SYNCS,
  ) {
    this.startedAt = now;
  }

  record(r: SyncReport, at = Date.now()): void {
    this.counts.syncs++;
    this.counts.byResult[r.result]++;
    this.counts.messages += r.counts?.saved ?? 0;
    this.counts.bytes += r.counts?.bytes ?? 0;
    this.ring.unshift({ at, user: r.user, full: r.full, priority: r.priority, result: r.result, ms: r.ms, saved: r.counts?.saved, bytes: r.counts?.bytes, error: r.error });
    if (this.ring.length > this.keep) this.ring.length = this.keep;
  }

  /** Newest first. */
  recent(): RecentSync[] {
    return [...this.ring];
  }

  totals(): SyncTotals {
    return { ...this.counts, byResult: { ...this.counts.byResult } };
  }
}
