/**
 * Special-use folders whose names differ between two stores: one server's "Sent Items" is the
 * other's "Sent", both marked \Sent (RFC 6154). Copying the first by name would give the
 * destination a second Sent folder its clients never look at. Pure: no I/O.
 *
 * A pair is formed for each role both sides hold exactly once under different names, provided
 * neither side already has a mailbox under the other's name (then names match as they are).
 * The pair is then one mailbox under the second side's name; children move along.
 */
import { mailboxKey, type MailboxName, type MailboxStatus, type MailStore } from '../storage/store.js';

/** The roles worth mapping: real folders every server names its own way. */
const ROLES = ['\\Sent', '\\Trash', '\\Drafts', '\\Junk', '\\Archive'];

export interface NamePair {
  /** The name on the side whose names are translated. */
  own: MailboxName;
  /** The name the other side gives the same folder. */
  shown: MailboxName;
}

function isInbox(name: MailboxName): boolean {
  return name.length === 1 && name[0] === 'INBOX';
}

function isUnder(name: MailboxName, parent: MailboxName): boolean {
  return name.length >= parent.length && parent.every((p, i) => name[i] === p);
}

/**
 * Pairs that present `a`'s special-use folders under `b`'s names: only where one of the stores
 * is a server that owns its folder names (see MailStore.ownsSpecialUseNames). Between two
 * Maildirs a backup keeps names exactly, a renamed Sent folder included.
 */
export function specialUsePairsFor(a: { store: Pick<MailStore, 'ownsSpecialUseNames'>; list: readonly MailboxStatus[] }, b: { store: Pick<MailStore, 'ownsSpecialUseNames'>; list: readonly MailboxStatus[] }): NamePair[] {
  return a.store.ownsSpecialUseNames || b.store.ownsSpecialUseNames ? specialUsePairs(a.list, b.list) : [];
}

/** Pairs that present `a`'s special-use folders under `b`'s names. */
export function specialUsePairs(a: readonly MailboxStatus[], b: readonly MailboxStatus[]): NamePair[] {
  const withRole = (list: readonly MailboxStatus[], role: string) => list.filter((m) => m.specialUse.some((u) => u.toLowerCase() === role.toLowerCase()));
  const namesA = new Set(a.map((m) => mailboxKey(m.name)));
  const namesB = new Set(b.map((m) => mailboxKey(m.name)));
  const pairs: NamePair[] = [];
  for (const role of ROLES) {
    const [ra, rb] = [withRole(a, role), withRole(b, role)];
    if (ra.length !== 1 || rb.length !== 1) continue;
    const [own, shown] = [ra[0]!.name, rb[0]!.name];
    if (mailboxKey(own) === mailboxKey(shown) || isInbox(own) || isInbox(shown)) continue;
    if (namesA.has(mailboxKey(shown)) || namesB.has(mailboxKey(own))) continue;
    // Nested pairs would translate twice; one folder inside another is too odd to guess about.
    if (pairs.some((p) => isUnder(own, p.own) || isUnder(p.own, own) || isUnder(shown, p.shown) || isUnder(p.shown, shown))) continue;
    pairs.push({ own, shown });
  }
  return pairs;
}

/** Translates names through the pairs, prefixes included: `Sent Items/2023` -> `Sent/2023`. */
export class NameTranslation {
  constructor(readonly pairs: readonly NamePair[]) {}

  get empty(): boolean {
    return this.pairs.length === 0;
  }

  /** The other side's name for one of ours. */
  shown(own: MailboxName): MailboxName {
    return this.swap(own, 'own', 'shown');
  }

  /** Our name for one the other side uses. */
  own(shown: MailboxName): MailboxName {
    return this.swap(shown, 'shown', 'own');
  }

  /** True when `shown` names a translated folder or one of its children. */
  translates(shown: MailboxName): boolean {
    return this.pairs.some((p) => isUnder(shown, p.shown));
  }

  private swap(name: MailboxName, from: 'own' | 'shown', to: 'own' | 'shown'): MailboxName {
    for (const p of this.pairs) if (isUnder(name, p[from])) return [...p[to], ...name.slice(p[from].length)];
    return name;
  }
}

/**
 * A mailbox filter (-m, -x) over translated names: a translated folder is chosen when either
 * of its names is, so both sides of one pair are always chosen together.
 */
export function translatedFilter(wanted: (m: MailboxStatus) => boolean, t: NameTranslation): (m: MailboxStatus) => boolean {
  if (t.empty) return wanted;
  return (m) => wanted(m) || (t.translates(m.name) && wanted({ ...m, name: t.own(m.name) }));
}
