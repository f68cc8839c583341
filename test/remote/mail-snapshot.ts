/** What a store holds, in a form two stores can be compared by: per mailbox, per UID. */
import { createHash } from 'node:crypto';
import type { MailStore } from '../../src/storage/store.js';
import { readAll } from '../contract/store-contract.js';

export interface SnapshotMessage {
  uid: number;
  guid: string;
  flags: string;
  md5: string;
}

export async function snapshot(store: MailStore, options: { guids?: boolean } = {}): Promise<Record<string, SnapshotMessage[]>> {
  const out: Record<string, SnapshotMessage[]> = {};
  const { mailboxes } = await store.listMailboxes();
  for (const m of mailboxes) {
    const { messages } = await store.getMessages(m.name);
    const rows: SnapshotMessage[] = [];
    for (const msg of messages) {
      const body = await readAll(await store.openMessage(m.name, msg.uid));
      rows.push({
        uid: msg.uid,
        guid: options.guids === false ? '' : msg.guid,
        flags: [...msg.flags, ...msg.keywords].sort().join(' '),
        md5: createHash('md5').update(body).digest('hex'),
      });
    }
    out[m.name.join('/')] = rows;
  }
  return out;
}

/** Bodies by MD5 with how often each is held, over every mailbox: for "nothing lost or duplicated". */
export function bodyCounts(snap: Record<string, SnapshotMessage[]>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [box, rows] of Object.entries(snap)) for (const r of rows) counts.set(`${box}:${r.md5}`, (counts.get(`${box}:${r.md5}`) ?? 0) + 1);
  return counts;
}
