/**
 * The one-line summary `backup` and `sync` print with -v or --dry-run: one wording for both,
 * so a log can be read the same whichever command wrote it.
 */
import type { BackupResult } from '../sync/backup.js';
import type { SyncResult } from '../sync/sync.js';
import type { SideActions, TwoWayPlan } from '../sync/twoway-plan.js';

/** What both commands count; `rebuilt` (mailboxes emptied and copied again) only a backup does. */
export type RunCounts = Omit<SyncResult, 'changedDuringSync' | 'incomplete' | 'state'> & Partial<Pick<BackupResult, 'rebuilt'>>;

export function summaryLine(c: RunCounts, dryRun: boolean): string {
  const copied = `${dryRun ? 'would copy' : 'copied'} ${c.saved} messages (${c.bytes} bytes)`;
  return `${c.mailboxes} mailboxes (${c.skipped} unchanged), ${copied}, ${c.flagUpdates} flag updates, ${c.expunged} expunges, ${c.treeActions} mailbox changes, ${c.rebuilt ?? 0} rebuilt`;
}

/**
 * What a dry-run sync planned, summed from its mailbox plans: the engine counts only what it
 * carried out, and a dry run carries out nothing.
 */
export class PlannedCounts {
  saved = 0;
  bytes = 0;
  flagUpdates = 0;
  expunged = 0;

  add(plan: TwoWayPlan): void {
    for (const side of [plan.a, plan.b] as SideActions[]) {
      this.saved += side.saves.length;
      this.bytes += side.saves.reduce((n, s) => n + s.size, 0);
      this.flagUpdates += side.flagUpdates.length;
      this.expunged += side.expunges.length;
    }
  }

  /** `result` with the planned counts where it reports none (an engine that counts plans in a dry run wins). */
  over<T extends RunCounts>(result: T): T {
    if (result.saved + result.flagUpdates + result.expunged > 0) return result;
    return { ...result, saved: this.saved, bytes: this.bytes, flagUpdates: this.flagUpdates, expunged: this.expunged };
  }
}
