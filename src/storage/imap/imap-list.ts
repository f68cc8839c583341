/**
 * The mailbox list: one LIST (with LIST-STATUS where offered) compared with the side index,
 * so creates, deletes, renames and (un)subscriptions made by other clients enter the mailbox
 * log. IMAP has no mailbox GUIDs; ours live in the index by name, and a mailbox that vanished
 * while a new one appeared with the same server UIDVALIDITY is taken as renamed (servers keep
 * UIDVALIDITY across RENAME).
 */
import type { ListResponse } from 'imapflow';
import { mailboxKey, sameMailbox, type MailboxListChange, type MailboxName } from '../store.js';
import { parseServerState, type ImapContext } from './imap-context.js';
import { newGuid } from './imap-mailbox-sync.js';

export interface ListedMailbox {
  name: MailboxName;
  path: string;
  entry: ListResponse;
}

export async function listServerMailboxes(ctx: ImapContext): Promise<ListedMailbox[]> {
  const entries = await ctx.session.run('LIST', async (client) => {
    const condstore = client.enabled.has('CONDSTORE');
    return client.list({ statusQuery: { messages: true, uidNext: true, uidValidity: true, ...(condstore ? { highestModseq: true } : {}) } });
  });
  const out: ListedMailbox[] = [];
  for (const entry of entries) {
    const flags = new Set([...entry.flags].map((f) => f.toLowerCase()));
    if (flags.has('\\noselect') || flags.has('\\nonexistent')) continue;
    const name = ctx.names.fromPath(entry.path);
    if (name) out.push({ name, path: entry.path, entry });
  }
  return out;
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
    const uv = Number(l.entry.status?.uidValidity ?? 0);
    const renamedFrom = uv > 0 ? vanished.find((k) => parseServerState(k.scanFingerprint)?.v === uv) : undefined;
    if (renamedFrom) {
      vanished.splice(vanished.indexOf(renamedFrom), 1);
      ctx.index.renameMailbox(renamedFrom.id, l.name);
      log({ type: 'rename', guid: renamedFrom.guid, name: l.name, oldName: renamedFrom.name, timestamp: ts });
      continue;
    }
    const guid = newGuid();
    const created = ctx.index.addMailbox(guid, l.name, uv || Math.floor(Date.now() / 1000));
    ctx.index.applyChanges(created.id, [], { uidNext: l.entry.status?.uidNext ?? 1, fingerprint: null });
    log({ type: 'create', guid, name: l.name, timestamp: ts });
  }
  for (const k of vanished) {
    log({ type: 'delete', guid: k.guid, name: k.name, timestamp: ts });
    ctx.index.removeMailbox(k.id);
  }
  const subscribed = listed.filter((l) => l.entry.subscribed).map((l) => l.name);
  const before = new Set(ctx.index.knownSubscriptions().map(mailboxKey));
  const now = new Set(subscribed.map(mailboxKey));
  if (before.size !== now.size || [...now].some((k) => !before.has(k))) {
    for (const n of subscribed) if (!before.has(mailboxKey(n))) log({ type: 'subscribe', name: n, timestamp: ts });
    for (const n of ctx.index.knownSubscriptions()) if (!now.has(mailboxKey(n))) log({ type: 'unsubscribe', name: n, timestamp: ts });
    ctx.index.setKnownSubscriptions(subscribed);
  }
}
