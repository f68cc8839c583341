/**
 * The priorities of Dovecot's replicator, lowest first: `none` (nothing pending: only the
 * periodic full sync is due), `low` (flags changed, a mailbox was created, renamed or deleted),
 * `high` (new mail) and `sync` (someone asked for a sync now). A pending priority only ever
 * rises until the sync that takes it starts.
 */
import { usageError } from '../model/errors.js';

export const PRIORITIES = ['none', 'low', 'high', 'sync'] as const;

export type ReplicationPriority = (typeof PRIORITIES)[number];

export function priorityRank(p: ReplicationPriority): number {
  return PRIORITIES.indexOf(p);
}

export function priorityOfRank(rank: number): ReplicationPriority {
  const p = PRIORITIES[rank];
  if (p === undefined) throw new RangeError(`no replication priority of rank ${rank}`);
  return p;
}

export function higherPriority(a: ReplicationPriority, b: ReplicationPriority): ReplicationPriority {
  return priorityRank(a) >= priorityRank(b) ? a : b;
}

export function isPriority(value: unknown): value is ReplicationPriority {
  return typeof value === 'string' && (PRIORITIES as readonly string[]).includes(value);
}

/** `-p` of `replicator replicate`: low, high or sync (none asks for nothing). */
export function parseRequestPriority(value: string): ReplicationPriority {
  if (value === 'none' || !isPriority(value)) throw usageError(`invalid priority '${value}': expected low, high or sync`);
  return value;
}

/**
 * How far a pending priority moves a user ahead of the time its change arrived (Dovecot's
 * boosts): a request waits behind a new-mail change only if that change is over 15 minutes older,
 * so no priority starves another for long.
 */
export const PRIORITY_BOOST_MS: Record<ReplicationPriority, number> = {
  none: 0,
  low: 15 * 60_000,
  high: 30 * 60_000,
  sync: 45 * 60_000,
};
