/**
 * Planning the mailbox trees of a two-way sync: pure, no I/O. Mailboxes follow their GUIDs:
 * a rename on one side is a rename on the other (the later rename wins when both renamed;
 * a side whose log shows it renaming the mailbox away from the other side's current name
 * wins outright, since only it changed the name: timestamps are whole seconds and clocks of
 * two stores differ, so a rename made in the same second as the sync that created the
 * mailbox on the other side must not lose to that create),
 * a delete logged on one side deletes the same GUID on the other unless it was renamed or
 * created there after the delete, and a mailbox only one side has is created on the other
 * with the same GUID and UIDVALIDITY. Two unrelated mailboxes with the same name (both sides
 * auto-created `Sent`) become one: the numerically larger GUID wins, as in dsync.
 */
import { mailboxKey, type MailboxListChange, type MailboxName, type MailboxStatus } from '../storage/store.js';

export interface TreeSide {
  mailboxes: readonly MailboxStatus[];
  changes: readonly MailboxListChange[];
}

export type SideTreeAction =
  | { type: 'create'; name: MailboxName; guid: string; uidValidity: number; specialUse: string[] }
  | { type: 'rename'; guid: string; to: MailboxName }
  | { type: 'delete'; guid: string; name: MailboxName }
  | { type: 'set-guid'; name: MailboxName; guid: string }
  | { type: 'subscribe'; name: MailboxName; subscribed: boolean };

export interface TreePlan {
  a: SideTreeAction[];
  b: SideTreeAction[];
}

/** Latest time this side renamed or created the GUID (0 when its log does not say). */
function lastMoved(side: TreeSide, guid: string): number {
  let ts = 0;
  for (const c of side.changes) if ((c.type === 'rename' || c.type === 'create') && c.guid === guid) ts = Math.max(ts, c.timestamp);
  return ts;
}

function deletedAt(side: TreeSide, guid: string): number | undefined {
  let ts: number | undefined;
  for (const c of side.changes) if (c.type === 'delete' && c.guid === guid) ts = Math.max(ts ?? 0, c.timestamp);
  return ts;
}

/** Whether this side's log shows it renaming the GUID away from `name`. */
function renamedAwayFrom(side: TreeSide, guid: string, name: MailboxName): boolean {
  const key = mailboxKey(name);
  return side.changes.some((c) => c.type === 'rename' && c.guid === guid && mailboxKey(c.oldName) === key);
}

/**
 * Whether this side's log shows it leaving the subscription state `other` for name: an entry
 * setting `other`, followed later by the entry that set the side's current (different) state.
 * The tie-breaker for changes logged in the same second.
 */
function leftSubscriptionState(side: TreeSide, name: MailboxName, other: boolean): boolean {
  const key = mailboxKey(name);
  let held = false;
  let left = false;
  for (const c of side.changes) {
    if ((c.type !== 'subscribe' && c.type !== 'unsubscribe') || mailboxKey(c.name) !== key) continue;
    const value = c.type === 'subscribe';
    if (value === other) {
      held = true;
      left = false;
    } else if (held) left = true;
  }
  return left;
}

function lastSubscriptionChange(side: TreeSide, name: MailboxName): number {
  const key = mailboxKey(name);
  let ts = 0;
  for (const c of side.changes) if ((c.type === 'subscribe' || c.type === 'unsubscribe') && mailboxKey(c.name) === key) ts = Math.max(ts, c.timestamp);
  return ts;
}

function isInbox(name: MailboxName): boolean {
  return name.length === 1 && name[0] === 'INBOX';
}

/** Where a surviving mailbox ends up, and the status to create it from where it is missing. */
interface Destination {
  name: MailboxName;
  from: MailboxStatus;
}

function isUnder(name: MailboxName, parent: MailboxName): boolean {
  return name.length > parent.length && parent.every((p, i) => name[i] === p);
}

/** `name` with a suffix from `guid` that no name in `taken` has. */
function uniqueName(name: MailboxName, guid: string, taken: ReadonlySet<string>, tag = ''): MailboxName {
  for (const len of [8, 16, 32]) {
    const candidate = [...name.slice(0, -1), `${name.at(-1)}-${tag}${guid.slice(0, len)}`];
    if (!taken.has(mailboxKey(candidate))) return candidate;
  }
  return [...name.slice(0, -1), `${name.at(-1)}-${tag}${guid}-${taken.size}`];
}

/**
 * The renames that take one side from `current` to `wanted` names, in an order in which
 * every target is free when its turn comes: a rename waits for the one that moves the
 * target's holder away, and a cycle (two folders swapped names) is broken by moving one
 * holder to a temporary name first. A renamed folder carries its children along, as the
 * stores do.
 */
function orderedRenames(current: ReadonlyMap<string, MailboxName>, wanted: ReadonlyMap<string, MailboxName>, taken: Set<string>): SideTreeAction[] {
  const names = new Map(current);
  const out: SideTreeAction[] = [];
  const move = (guid: string, to: MailboxName) => {
    const from = names.get(guid)!;
    out.push({ type: 'rename', guid, to });
    for (const [g, n] of names) {
      if (g === guid) names.set(g, to);
      else if (isUnder(n, from)) names.set(g, [...to, ...n.slice(from.length)]);
    }
    taken.add(mailboxKey(to));
  };
  for (let guard = 4 * wanted.size + 4; guard > 0; guard--) {
    const pending = [...wanted].filter(([g, to]) => names.has(g) && mailboxKey(names.get(g)!) !== mailboxKey(to));
    if (pending.length === 0) break;
    const holders = new Map([...names].map(([g, n]) => [mailboxKey(n), g]));
    const free = pending.find(([, to]) => !holders.has(mailboxKey(to)));
    if (free) {
      move(free[0], free[1]);
      continue;
    }
    const [, to] = pending[0]!;
    const holder = holders.get(mailboxKey(to))!;
    if (!pending.some(([g]) => g === holder)) {
      // Held by a folder that stays: name conflicts are resolved before this, so only a store
      // changed under us gets here. The store refuses; the run reports a change during sync.
      move(pending[0]![0], to);
      continue;
    }
    move(holder, uniqueName(names.get(holder)!, holder, taken, 'tmp-'));
  }
  return out;
}

/**
 * `oneway`: only B changes (sync -1): it gains A's mailboxes and renames, nothing is deleted,
 * and a same-name clash takes A's GUID.
 *
 * The plan first decides where every mailbox that survives ends up (its final name, by GUID),
 * then gives a name two different mailboxes would end up with to one of them (the larger
 * GUID; A's mailbox in a one-way merge) and moves the other to `name-<guid prefix>`, so two
 * sides never fight over a name run after run. Each side's actions come in the order a store
 * can apply them: GUID changes, deletes, renames (ordered so that targets are free), creates,
 * subscriptions.
 */
export function planTreeTwoWay(a: TreeSide, b: TreeSide, mode: 'twoway' | 'oneway' = 'twoway'): TreePlan {
  const plan: TreePlan = { a: [], b: [] };
  const oneway = mode === 'oneway';
  const byGuidA = new Map(a.mailboxes.map((m) => [m.guid, m]));
  const byGuidB = new Map(b.mailboxes.map((m) => [m.guid, m]));
  const byNameA = new Map(a.mailboxes.map((m) => [mailboxKey(m.name), m]));
  const byNameB = new Map(b.mailboxes.map((m) => [mailboxKey(m.name), m]));
  const unified = new Set<string>();
  for (const ma of a.mailboxes) {
    const mb = byNameB.get(mailboxKey(ma.name));
    if (!mb || mb.guid === ma.guid || byGuidB.has(ma.guid) || byGuidA.has(mb.guid)) continue;
    const winner = oneway || isInbox(ma.name) ? ma.guid : ma.guid > mb.guid ? ma.guid : mb.guid;
    if (winner === ma.guid) plan.b.push({ type: 'set-guid', name: mb.name, guid: ma.guid });
    else plan.a.push({ type: 'set-guid', name: ma.name, guid: mb.guid });
    unified.add(ma.guid).add(mb.guid);
  }
  for (const ma of a.mailboxes) {
    if (unified.has(ma.guid)) continue;
    const mb = byGuidB.get(ma.guid);
    if (mb) {
      if (mailboxKey(ma.name) === mailboxKey(mb.name)) continue;
      const aWins = oneway || lastMoved(a, ma.guid) >= lastMoved(b, mb.guid);
      if (aWins) plan.b.push({ type: 'rename', guid: ma.guid, to: ma.name });
      else plan.a.push({ type: 'rename', guid: ma.guid, to: mb.name });
      continue;
    }
    const gone = deletedAt(b, ma.guid);
    if (!oneway && gone !== undefined && lastMoved(a, ma.guid) <= gone && !isInbox(ma.name)) {
      plan.a.push({ type: 'delete', guid: ma.guid, name: ma.name });
    } else {
      plan.b.push({ type: 'create', name: ma.name, guid: ma.guid, uidValidity: ma.uidValidity, specialUse: ma.specialUse });
    }
  }
  if (!oneway) {
    for (const mb of b.mailboxes) {
      if (unified.has(mb.guid) || byGuidA.has(mb.guid)) continue;
      const gone = deletedAt(a, mb.guid);
      if (gone !== undefined && lastMoved(b, mb.guid) <= gone && !isInbox(mb.name)) {
        plan.b.push({ type: 'delete', guid: mb.guid, name: mb.name });
      } else {
        plan.a.push({ type: 'create', name: mb.name, guid: mb.guid, uidValidity: mb.uidValidity, specialUse: mb.specialUse });
      }
    }
  }
  const names = new Map<string, MailboxName>();
  for (const m of [...a.mailboxes, ...b.mailboxes]) names.set(mailboxKey(m.name), m.name);
  for (const [key, name] of names) {
    const sa = byNameA.get(key)?.subscribed ?? false;
    const sb = byNameB.get(key)?.subscribed ?? false;
    if (sa === sb) continue;
    const ta = lastSubscriptionChange(a, name);
    const tb = lastSubscriptionChange(b, name);
    const want = oneway ? sa || sb : ta === tb ? true : ta > tb ? sa : sb;
    if (sa !== want && !oneway) plan.a.push({ type: 'subscribe', name, subscribed: want });
    if (sb !== want) plan.b.push({ type: 'subscribe', name, subscribed: want });
  }
  return plan;
}
