/**
 * Mailboxes one side has that the other cannot hold (a name its layout cannot spell, a folder
 * with mail and children on an mbox tree). They are found before anything is created or
 * copied and then left out on both sides, as `-x` would leave them, so one unusable name
 * costs that mailbox (with a warning naming it) and never the rest of the run.
 */
import { formatMailboxName } from '../model/mailbox-name.js';
import { mailboxKey, sameMailbox, type MailboxName, type MailboxStatus, type MailStore } from '../storage/store.js';

export interface Unholdable {
  name: MailboxName;
  /** The store that cannot hold it, as the user wrote its location. */
  location: string;
  reason: string;
}

function hasChild(name: MailboxName, all: readonly MailboxStatus[]): boolean {
  return all.some((m) => m.name.length > name.length && sameMailbox(m.name.slice(0, name.length), name));
}

/** The mailboxes of `from` that `to` cannot hold. */
export function unholdableIn(to: MailStore, from: readonly MailboxStatus[]): Unholdable[] {
  if (!to.mailboxNameProblem) return [];
  const found: Unholdable[] = [];
  for (const m of from) {
    const reason = to.mailboxNameProblem(m.name, { hasChildren: hasChild(m.name, from), messages: m.messages });
    if (reason !== undefined) found.push({ name: m.name, location: to.location, reason });
  }
  return found;
}

/** A filter that leaves these names out, for both sides' lists. */
export function withoutUnholdable(found: readonly Unholdable[]): (m: MailboxStatus) => boolean {
  const keys = new Set(found.map((u) => mailboxKey(u.name)));
  return (m) => !keys.has(mailboxKey(m.name));
}

export function describeUnholdable(u: Unholdable, separator: string): string {
  return `mailbox '${formatMailboxName(u.name, separator)}' not copied: ${u.location} cannot hold it (${u.reason})`;
}
