/**
 * Planning the mailbox tree of a one-way backup: pure, no I/O. Mailboxes are matched by GUID,
 * so a folder renamed at the source is renamed at the destination, not deleted and copied
 * again. Renaming a mailbox moves its children with it (as every store does), and the plan
 * simulates that so later steps name mailboxes where they will actually be.
 */
import { mailboxKey, type MailboxName, type MailboxStatus } from '../storage/store.js';

export type TreeAction =
  | { type: 'rename'; from: MailboxName; to: MailboxName; guid: string }
  | { type: 'delete'; name: MailboxName; guid: string }
  | { type: 'create'; name: MailboxName; guid: string; uidValidity: number; specialUse: string[] }
  /** Same name, unrelated GUID: keep the folder (its messages may be the same) but take the source's identity. */
  | { type: 'adopt'; name: MailboxName; guid: string; fromGuid: string }
  | { type: 'subscribe'; name: MailboxName; subscribed: boolean };

type Tree = Pick<MailboxStatus, 'name' | 'guid' | 'subscribed'> & Partial<MailboxStatus>;

function isUnder(name: MailboxName, parent: MailboxName): boolean {
  return name.length >= parent.length && parent.every((p, i) => name[i] === p);
}

function isInbox(name: MailboxName): boolean {
  return name.length === 1 && name[0] === 'INBOX';
}

export function planTreeBackup(source: readonly MailboxStatus[], dest: readonly Tree[]): TreeAction[] {
  const actions: TreeAction[] = [];
  const sourceGuids = new Set(source.map((s) => s.guid));
  // Where each destination mailbox is now, by GUID, as the plan moves things around.
  const where = new Map<string, MailboxName>(dest.map((d) => [d.guid, d.name]));
  const subscribed = new Map<string, boolean>(dest.map((d) => [mailboxKey(d.name), d.subscribed]));
  const occupant = (name: MailboxName): string | undefined => {
    const key = mailboxKey(name);
    for (const [guid, n] of where) if (mailboxKey(n) === key) return guid;
    return undefined;
  };
  let temp = 0;
  const rename = (guid: string, to: MailboxName) => {
    // The store moves every child along and cannot put one where another mailbox already is
    // (say `to/x` exists while `to` does not): clear those spots first, shallowest first so a
    // parked mailbox takes its own children with it. Parking can move `guid` too, so re-read.
    for (;;) {
      const from = where.get(guid)!;
      const landing = new Set([...where.values()].filter((n) => isUnder(n, from)).map((n) => mailboxKey([...to, ...n.slice(from.length)])));
      const hit = [...where].filter(([, n]) => !isUnder(n, from) && landing.has(mailboxKey(n))).sort((a, b) => a[1].length - b[1].length)[0];
      if (!hit) break;
      if (sourceGuids.has(hit[0])) rename(hit[0], [`${hit[1].join('_')}-mailferry-temp-${++temp}`]);
      else remove(hit[0]);
    }
    const from = where.get(guid)!;
    actions.push({ type: 'rename', from, to, guid });
    for (const [g, n] of where) if (isUnder(n, from)) where.set(g, [...to, ...n.slice(from.length)]);
  };
  const remove = (guid: string) => {
    actions.push({ type: 'delete', name: where.get(guid)!, guid });
    where.delete(guid);
  };

  // Parents first, so a parent's rename carries its children before they are looked at.
  const ordered = [...source].sort((a, b) => a.name.length - b.name.length || mailboxKey(a.name).localeCompare(mailboxKey(b.name)));
  for (const s of ordered) {
    const at = where.get(s.guid);
    if (!at || mailboxKey(at) === mailboxKey(s.name)) continue;
    const blocker = occupant(s.name);
    if (blocker !== undefined) {
      if (sourceGuids.has(blocker) && !isInbox(s.name)) rename(blocker, [`${s.name.join('_')}-mailferry-temp-${++temp}`]);
      else if (!isInbox(s.name)) remove(blocker);
    }
    if (isInbox(at) || isInbox(s.name)) continue; // INBOX never moves; its GUID is adopted below instead.
    if (isUnder(s.name, at)) continue; // Cannot move a folder into its own child; recreated below.
    rename(s.guid, s.name);
  }

  // INBOX first: it can be neither deleted nor created, so it always takes the source's GUID in
  // place, and must give up a GUID another source mailbox needs before that one is created.
  const inboxFirst = [...ordered.filter((s) => isInbox(s.name)), ...ordered.filter((s) => !isInbox(s.name))];
  for (const s of inboxFirst) {
    const at = where.get(s.guid);
    if (at && mailboxKey(at) === mailboxKey(s.name)) continue;
    const blocker = occupant(s.name);
    if (isInbox(s.name) && blocker !== undefined) {
      // Deleting INBOX is not possible; adopt even when its GUID belongs to another source
      // mailbox (that one is created afresh below). The GUID must be free first: a store
      // refuses two mailboxes with one GUID, so a copy stuck elsewhere goes.
      if (at) remove(s.guid);
      actions.push({ type: 'adopt', name: s.name, guid: s.guid, fromGuid: blocker });
      where.delete(blocker);
      where.set(s.guid, s.name);
      continue;
    }
    // Only when the source has no INBOX (a filtered list): INBOX keeps this GUID, and a second
    // mailbox cannot have it.
    if (at && isInbox(at)) continue;
    if (blocker !== undefined && !sourceGuids.has(blocker)) {
      actions.push({ type: 'adopt', name: s.name, guid: s.guid, fromGuid: blocker });
      where.delete(blocker);
      where.set(s.guid, s.name);
      continue;
    }
    if (at) remove(s.guid); // stuck somewhere it cannot be moved from: start it over
    if (blocker !== undefined) remove(blocker);
    actions.push({ type: 'create', name: s.name, guid: s.guid, uidValidity: s.uidValidity, specialUse: s.specialUse });
    where.set(s.guid, s.name);
  }

  // Children before parents, so deleting a parent never takes a child we still want along.
  const leftovers = [...where.entries()].filter(([g]) => !sourceGuids.has(g)).sort((a, b) => b[1].length - a[1].length);
  for (const [guid, name] of leftovers) if (!isInbox(name)) remove(guid);

  for (const s of source) {
    if ((subscribed.get(mailboxKey(s.name)) ?? false) !== s.subscribed) {
      actions.push({ type: 'subscribe', name: s.name, subscribed: s.subscribed });
    }
  }
  return actions;
}
