/**
 * The change times the planner compares where no base decides a flag difference (see
 * twoway-plan.ts): asked of both stores for those messages only, since a store may pay a
 * look at each message to answer. Only when both can answer do the times mean anything.
 */
import type { MailboxName, MailStore } from '../storage/store.js';
import { distinguishCopies } from './copies.js';
import type { SyncSide } from './twoway-plan.js';

interface Located {
  store: MailStore;
  name: MailboxName;
}

export async function withFlagChangeTimes(a: Located, sa: SyncSide, b: Located, sb: SyncSide, guids: readonly string[]): Promise<[SyncSide, SyncSide]> {
  if (guids.length === 0 || !a.store.flagChangeTimes || !b.store.flagChangeTimes) return [sa, sb];
  const wanted = new Set(guids);
  // `guids` are the planners' keys, so a second copy of one GUID is asked for as itself.
  const uidsOf = (side: SyncSide) => distinguishCopies(side.messages).filter((m) => wanted.has(m.guid)).map((m) => m.uid);
  const timesA = await a.store.flagChangeTimes(a.name, uidsOf(sa));
  const timesB = await b.store.flagChangeTimes(b.name, uidsOf(sb));
  return [
    { ...sa, flagsChangedAt: timesA },
    { ...sb, flagsChangedAt: timesB },
  ];
}
