/**
 * The mailbox list: one LIST (with LIST-STATUS where offered) compared with the side index,
 * so creates, deletes, renames and (un)subscriptions made by other clients enter the mailbox
 * log. IMAP has no mailbox GUIDs; ours live in the index by name, and a mailbox that vanished
 * while a new one appeared with the same server UIDVALIDITY is taken as renamed (servers keep
 * UIDVALIDITY across RENAME).
 */
import type { ImapFlow } from 'imapflow';
import { decodeMutf7 } from '../../model/mutf7.js';
import { guessSpecialUse } from '../maildir/special-use.js';
import { mailboxKey, sameMailbox, type MailboxListChange, type MailboxName } from '../store.js';
import { parseServerState, type ImapContext } from './imap-context.js';
import { isConnectionError, isThrottle } from './imap-errors.js';
import { newGuid, type KnownStatus } from './imap-mailbox-sync.js';
import { raw, type RawUntagged } from './imap-session.js';
import { parseListLine, parseStatusLine } from './list-response.js';

export interface ListedMailbox {
  name: MailboxName;
  path: string;
  /** As the server said, never assumed: see listServerMailboxes. */
  subscribed: boolean;
  /** The server's special-use attribute, else the one its name suggests. */
  specialUse?: string;
  /** STATUS as LIST-STATUS gave it, when the server offers that. */
  status?: KnownStatus;
}

const SPECIAL_USE = new Set(['\\all', '\\archive', '\\drafts', '\\flagged', '\\junk', '\\sent', '\\trash']);

interface Entry {
  flags: string[];
  delimiter: string;
  subscribed: boolean;
  status?: KnownStatus;
}

/**
 * The mailbox list in one command: LIST "" "*" RETURN (SUBSCRIBED STATUS (...)) where the
 * server offers LIST-EXTENDED and LIST-STATUS; LIST and LSUB otherwise. The list is read here
 * rather than through imapflow's list(), which reports INBOX as subscribed whatever the server
 * says (and every folder when it cannot tell): a backup from a store whose INBOX is not
 * subscribed then unsubscribed it again on every run. Its LSUB after a RETURN (SUBSCRIBED)
 * listing that has nothing subscribed also cost a round trip for nothing.
 */
export async function listServerMailboxes(ctx: ImapContext): Promise<ListedMailbox[]> {
  const entries = await ctx.session.run('LIST', (client) => listEntries(client));
  const out: ListedMailbox[] = [];
  for (const [path, e] of entries) {
    const flags = new Set(e.flags.map((f) => f.toLowerCase()));
    if (flags.has('\\noselect') || flags.has('\\nonexistent')) continue;
    const name = ctx.names.fromPath(path);
    if (!name) continue;
    const special = e.flags.find((f) => SPECIAL_USE.has(f.toLowerCase())) ?? guessSpecialUse(name)[0];
    out.push({ name, path, subscribed: e.subscribed, ...(special ? { specialUse: special } : {}), ...(e.status ? { status: e.status } : {}) });
  }
  return out;
}

async function listEntries(client: ImapFlow): Promise<Map<string, Entry>> {
  const caps = client.capabilities;
  const extended = caps.has('LIST-EXTENDED');
  const utf8 = client.enabled.has('UTF8=ACCEPT');
  const decode = (sent: string): string => {
    let path = sent;
    if (!utf8 && path.includes('&')) {
      try {
        path = decodeMutf7(path);
      } catch {
        // not valid modified UTF-7: the name as the server spelled it
      }
    }
    return path.toUpperCase() === 'INBOX' ? 'INBOX' : path;
  };
  const entries = new Map<string, Entry>();
  const statuses = new Map<string, KnownStatus>();
  const atom = (value: string) => ({ type: 'ATOM', value });
  const returns: unknown[] = [];
  if (extended) {
    returns.push(atom('SUBSCRIBED'));
    if (caps.has('SPECIAL-USE')) returns.push(atom('SPECIAL-USE'));
    if (caps.has('LIST-STATUS')) {
      const items = ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', ...(client.enabled.has('CONDSTORE') ? ['HIGHESTMODSEQ'] : [])];
      returns.push(atom('STATUS'), items.map(atom));
    }
  }
  const onList = (subscribedOnly: boolean) => (u: RawUntagged) => {
    const line = parseListLine(u);
    const { flags, delimiter } = line;
    let path = decode(line.path);
    if (delimiter && path.startsWith(delimiter)) path = path.slice(delimiter.length);
    const subscribed = subscribedOnly || flags.some((f) => f.toLowerCase() === '\\subscribed');
    const known = entries.get(path);
    if (subscribedOnly) {
      // LSUB: only the subscription of a mailbox LIST listed counts.
      if (known) known.subscribed = true;
      return;
    }
    if (known) known.subscribed ||= subscribed;
    else entries.set(path, { flags, delimiter, subscribed });
  };
  const onStatus = (u: RawUntagged) => {
    const { path, status } = parseStatusLine(u);
    statuses.set(decode(path), status);
  };
  let listed = false;
  if (returns.length > 0) {
    try {
      const r = await raw(client).exec('LIST', ['', '*', atom('RETURN'), returns], { untagged: { LIST: onList(false), STATUS: onStatus } });
      r.next();
      listed = true;
    } catch (err) {
      if (isConnectionError(err) || isThrottle(err)) throw err;
      // A server that announces LIST-EXTENDED but refuses its RETURN options: the plain way.
      entries.clear();
      statuses.clear();
    }
  }
  if (!listed) {
    const r = await raw(client).exec('LIST', ['', '*'], { untagged: { LIST: onList(false) } });
    r.next();
    const s = await raw(client).exec('LSUB', ['', '*'], { untagged: { LSUB: onList(true) } });
    s.next();
  }
  for (const [path, st] of statuses) {
    const e = entries.get(path);
    if (e && st.uidValidity !== undefined && st.uidNext !== undefined && st.messages !== undefined) e.status = st;
  }
  // imapflow LISTs (and LSUBs) a mailbox before its first SELECT unless its own list() saw it:
  // two round trips per mailbox that this listing has already answered.
  const folders = (client as unknown as { folders?: Map<string, unknown> }).folders;
  if (folders instanceof Map) {
    for (const [path, e] of entries) if (!folders.has(path)) folders.set(path, { path, delimiter: e.delimiter, flags: new Set(e.flags), subscribed: e.subscribed, listed: true });
  }
  return entries;
}

/** Brings the index's mailbox rows and log in line with what the server lists. */
export function reconcileMailboxList(ctx: ImapContext, listed: readonly ListedMailbox[]): void {
  const ts = Math.floor(Date.now() / 1000);
  const log = (c: MailboxListChange) => ctx.index.logMailboxChange(c);
  const known = ctx.index.listMailboxes();
  const listedKeys = new Set(listed.map((l) => mailboxKey(l.name)));
  const vanished = known.filter((k) => !listedKeys.has(mailboxKey(k.name)));
  for (const l of listed) {
    if (known.some((k) => sameMailbox(k.name, l.name))) continue;
    const uv = Number(l.status?.uidValidity ?? 0);
    const renamedFrom = uv > 0 ? vanished.find((k) => parseServerState(k.scanFingerprint)?.v === uv) : undefined;
    if (renamedFrom) {
      vanished.splice(vanished.indexOf(renamedFrom), 1);
      ctx.index.renameMailbox(renamedFrom.id, l.name);
      log({ type: 'rename', guid: renamedFrom.guid, name: l.name, oldName: renamedFrom.name, timestamp: ts });
      continue;
    }
    const guid = newGuid();
    const created = ctx.index.addMailbox(guid, l.name, uv || Math.floor(Date.now() / 1000));
    ctx.index.applyChanges(created.id, [], { uidNext: l.status?.uidNext ?? 1, fingerprint: null });
    log({ type: 'create', guid, name: l.name, timestamp: ts });
  }
  for (const k of vanished) {
    log({ type: 'delete', guid: k.guid, name: k.name, timestamp: ts });
    ctx.index.removeMailbox(k.id);
  }
  const subscribed = listed.filter((l) => l.subscribed).map((l) => l.name);
  const before = new Set(ctx.index.knownSubscriptions().map(mailboxKey));
  const now = new Set(subscribed.map(mailboxKey));
  if (before.size !== now.size || [...now].some((k) => !before.has(k))) {
    for (const n of subscribed) if (!before.has(mailboxKey(n))) log({ type: 'subscribe', name: n, timestamp: ts });
    for (const n of ctx.index.knownSubscriptions()) if (!now.has(mailboxKey(n))) log({ type: 'unsubscribe', name: n, timestamp: ts });
    ctx.index.setKnownSubscriptions(subscribed);
  }
}
