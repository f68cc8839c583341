/**
 * Planning the mailbox trees of a two-way sync: pure, no I/O. Mailboxes follow their GUIDs:
 * - a rename on one side is a rename on the other. A side whose log shows it renaming the
 *   mailbox away from the other side's current name wins outright (only it changed the name);
 *   otherwise the later rename wins and the master (A) breaks ties. Timestamps are whole
 *   seconds and two stores' clocks differ, so a rename made in the same second as the sync
 *   that created the mailbox on the other side must not lose to that create.
 * - a delete logged on one side deletes the same GUID on the other unless it was renamed or
 *   created there after the delete (a rename in the same second is not after it).
 * - a mailbox only one side has is created on the other with the same GUID and UIDVALIDITY.
 * - two unrelated mailboxes with the same name (both sides auto-created `Sent`) become one:
 *   the numerically larger GUID wins, as in dsync; but not when the other side deleted one of
 *   them (a folder deleted and made again under its old name is a new folder), INBOX excepted.
 * - two different mailboxes bound for one name (A renamed a folder to the name B gave a new
 *   one) both survive: the larger GUID keeps the name, the other becomes `name-<guid prefix>`
 *   on both sides, so the sides never fight over the name run after run.
 * - subscriptions: the later change wins; in the same second, the side whose log shows it
 *   leaving the other side's state; with no record either way, subscribed wins.
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
  | { type: 'subscribe'; name: MailboxName; subscribed: boolean }
  /**
   * The other side deleted the mailbox but never saw all of its mail: expunge what it saw (UIDs
   * below `belowUid`) and keep the mailbox, which the other side creates again.
   */
  | { type: 'prune'; guid: string; name: MailboxName; belowUid: number };

/**
 * Per side, by mailbox GUID: the side's UIDNEXT as the other side last saw it (from the pair
 * state), or 0 when the other side saw none of the mailbox's current UID epoch. A mailbox
 * without an entry is taken as fully seen.
 */
export interface SeenUpTo {
  a: ReadonlyMap<string, number>;
  b: ReadonlyMap<string, number>;
}

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
 * target's holder away, and a cycle (two folders swapped names) or a move into the folder's
 * own subtree is broken by moving a folder to a temporary name first. A renamed folder carries its children along, as the
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
    const free = pending.find(([g, to]) => !holders.has(mailboxKey(to)) && !isUnder(to, names.get(g)!));
    if (free) {
      move(free[0], free[1]);
      continue;
    }
    // Bound for a name under its own (B renamed Work.Sub to New, A renamed Work to New): no
    // store can move a folder into itself, so it steps aside first and goes there next round.
    const inward = pending.find(([g, to]) => isUnder(to, names.get(g)!));
    if (inward) {
      move(inward[0], uniqueName(names.get(inward[0])!, inward[0], taken, 'tmp-'));
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
export function planTreeTwoWay(a: TreeSide, b: TreeSide, mode: 'twoway' | 'oneway' = 'twoway', seen: SeenUpTo = { a: new Map(), b: new Map() }): TreePlan {
  const plan: TreePlan = { a: [], b: [] };
  const oneway = mode === 'oneway';
  const byGuidA = new Map(a.mailboxes.map((m) => [m.guid, m]));
  const byGuidB = new Map(b.mailboxes.map((m) => [m.guid, m]));
  const byNameA = new Map(a.mailboxes.map((m) => [mailboxKey(m.name), m]));
  const byNameB = new Map(b.mailboxes.map((m) => [mailboxKey(m.name), m]));

  const final = new Map<string, Destination>();
  const setGuid: TreePlan = { a: [], b: [] };
  const deletes: TreePlan = { a: [], b: [] };
  /** GUID -> name on each side once its GUID changes are applied. */
  const now = { a: new Map(a.mailboxes.map((m) => [m.guid, m.name])), b: new Map(b.mailboxes.map((m) => [m.guid, m.name])) };

  // Same name, unrelated GUIDs, neither GUID known to the other side: one mailbox. Not when
  // the other side deleted one of them: a folder deleted and made again under its old name
  // is a new folder, and the old one's mail must not come back into it.
  const unified = new Set<string>();
  for (const ma of a.mailboxes) {
    const mb = byNameB.get(mailboxKey(ma.name));
    if (!mb || mb.guid === ma.guid || byGuidB.has(ma.guid) || byGuidA.has(mb.guid)) continue;
    // INBOX cannot be deleted, so a delete logged of the other side's INBOX GUID is never the
    // user's: it is what an interrupted GUID change leaves. Not joining them would leave two
    // INBOXes that every run tries to create on the other side, and the mail of neither copied.
    if (!oneway && !isInbox(ma.name) && (deletedAt(a, mb.guid) !== undefined || deletedAt(b, ma.guid) !== undefined)) continue;
    const winner = oneway || isInbox(ma.name) ? ma.guid : ma.guid > mb.guid ? ma.guid : mb.guid;
    if (winner === ma.guid) {
      setGuid.b.push({ type: 'set-guid', name: mb.name, guid: ma.guid });
      now.b.delete(mb.guid);
      now.b.set(ma.guid, mb.name);
    } else {
      setGuid.a.push({ type: 'set-guid', name: ma.name, guid: mb.guid });
      now.a.delete(ma.guid);
      now.a.set(mb.guid, ma.name);
    }
    final.set(winner, { name: ma.name, from: winner === ma.guid ? ma : mb });
    unified.add(ma.guid).add(mb.guid);
  }

  const prunes: TreePlan = { a: [], b: [] };
  // A delete proves the deletion of what the deleting side knew: mail it never saw survives.
  const unseenMail = (side: 'a' | 'b', m: MailboxStatus): boolean => {
    const upTo = seen[side].get(m.guid);
    if (upTo === undefined || m.messages === 0 || m.uidNext <= upTo) return false;
    prunes[side].push({ type: 'prune', guid: m.guid, name: m.name, belowUid: upTo });
    return true;
  };
  for (const ma of a.mailboxes) {
    if (unified.has(ma.guid)) continue;
    const mb = byGuidB.get(ma.guid);
    if (mb) {
      const awayA = renamedAwayFrom(a, ma.guid, mb.name);
      const awayB = renamedAwayFrom(b, mb.guid, ma.name);
      const aWins = oneway || mailboxKey(ma.name) === mailboxKey(mb.name) || (awayA !== awayB ? awayA : lastMoved(a, ma.guid) >= lastMoved(b, mb.guid));
      final.set(ma.guid, { name: aWins ? ma.name : mb.name, from: ma });
      continue;
    }
    const gone = deletedAt(b, ma.guid);
    if (!oneway && gone !== undefined && lastMoved(a, ma.guid) <= gone && !isInbox(ma.name) && !unseenMail('a', ma)) {
      deletes.a.push({ type: 'delete', guid: ma.guid, name: ma.name });
      now.a.delete(ma.guid);
    } else {
      final.set(ma.guid, { name: ma.name, from: ma });
    }
  }
  for (const mb of b.mailboxes) {
    if (unified.has(mb.guid) || byGuidA.has(mb.guid)) continue;
    const gone = deletedAt(a, mb.guid);
    if (!oneway && gone !== undefined && lastMoved(b, mb.guid) <= gone && !isInbox(mb.name) && !unseenMail('b', mb)) {
      deletes.b.push({ type: 'delete', guid: mb.guid, name: mb.name });
      now.b.delete(mb.guid);
    } else {
      final.set(mb.guid, { name: mb.name, from: mb });
    }
  }

  // Two mailboxes bound for one name (A renamed a folder to the name B gave a new one):
  // one keeps it, the other moves aside on both sides.
  const taken = new Set<string>([...a.mailboxes, ...b.mailboxes].map((m) => mailboxKey(m.name)));
  for (const d of final.values()) taken.add(mailboxKey(d.name));
  const claims = new Map<string, string[]>();
  for (const [guid, d] of final) claims.set(mailboxKey(d.name), [...(claims.get(mailboxKey(d.name)) ?? []), guid]);
  for (const [key, guids] of claims) {
    if (guids.length < 2) continue;
    const ownA = byNameA.get(key)?.guid;
    const keeper = oneway && ownA !== undefined && guids.includes(ownA) ? ownA : guids.reduce((x, y) => (x > y ? x : y));
    for (const guid of guids) {
      if (guid === keeper) continue;
      const d = final.get(guid)!;
      if (isInbox(d.name)) continue;
      const name = uniqueName(d.name, guid, taken);
      taken.add(mailboxKey(name));
      final.set(guid, { ...d, name });
    }
  }

  for (const side of oneway ? (['b'] as const) : (['a', 'b'] as const)) {
    plan[side].push(...setGuid[side], ...deletes[side], ...prunes[side]);
    const wanted = new Map<string, MailboxName>();
    for (const guid of now[side].keys()) {
      const d = final.get(guid);
      if (d) wanted.set(guid, d.name);
    }
    plan[side].push(...orderedRenames(now[side], wanted, taken));
    for (const [guid, d] of final) {
      if (!now[side].has(guid)) plan[side].push({ type: 'create', name: d.name, guid, uidValidity: d.from.uidValidity, specialUse: d.from.specialUse });
    }
  }

  // Subscriptions: the later change wins; in the same second, the side that is logged leaving
  // the other side's state wins; with no record either way, subscribed wins.
  const names = new Map<string, MailboxName>();
  for (const m of [...a.mailboxes, ...b.mailboxes]) names.set(mailboxKey(m.name), m.name);
  for (const [key, name] of names) {
    const sa = byNameA.get(key)?.subscribed ?? false;
    const sb = byNameB.get(key)?.subscribed ?? false;
    if (sa === sb) continue;
    const ta = lastSubscriptionChange(a, name);
    const tb = lastSubscriptionChange(b, name);
    let want: boolean;
    if (oneway) want = sa || sb;
    else if (ta !== tb) want = ta > tb ? sa : sb;
    else {
      const leftA = leftSubscriptionState(a, name, sb);
      const leftB = leftSubscriptionState(b, name, sa);
      want = leftA !== leftB ? (leftA ? sa : sb) : true;
    }
    if (sa !== want && !oneway) plan.a.push({ type: 'subscribe', name, subscribed: want });
    if (sb !== want) plan.b.push({ type: 'subscribe', name, subscribed: want });
  }
  return plan;
}
