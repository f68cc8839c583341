/**
 * A Maildir and an mbox in a temp dir for engine tests of the two kinds together, and what a
 * mailbox holds by message body, the one thing both stores give back unchanged.
 */
import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLocation, parseMaildirLocation, type MboxLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import type { MailboxName, MailStore } from '../../src/storage/store.js';
import { readAll, req } from '../contract/store-contract.js';

export const INBOX: MailboxName = ['INBOX'];

export function bodyHash(message: Buffer): string {
  // The part after the header: the mbox adds headers of its own (its GUID, Status), and the
  // corpus's "From " first lines are header lines to one store and an envelope to the other.
  const text = message.toString('latin1').replace(/\r\n/g, '\n');
  const end = text.indexOf('\n\n');
  return createHash('sha256').update(end < 0 ? '' : text.slice(end + 2)).digest('hex');
}

/** Body hash -> how many messages of the mailbox have it. */
export async function bodyCounts(s: MailStore): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await s.getMessages(INBOX)).messages) {
    const h = bodyHash(await readAll(await s.openMessage(INBOX, m.uid)));
    out.set(h, (out.get(h) ?? 0) + 1);
  }
  return out;
}

export interface MixedPair {
  dir: string;
  openA: () => MaildirStore;
  openB: () => MboxStore;
}

export async function mixedPair(prefix: string): Promise<MixedPair> {
  const dir = await mkdtemp(join(tmpdir(), `mailferry-${prefix}-`));
  return {
    dir,
    openA: () => MaildirStore.open(parseMaildirLocation(`maildir:${join(dir, 'maildir')}`), { create: true, fsync: false, warn: () => {} }),
    openB: () => MboxStore.open(parseLocation(`mbox:${join(dir, 'mbox')}:INDEX=${join(dir, 'mbox-index')}`) as MboxLocation, { create: true, fsync: false, warn: () => {} }),
  };
}

/** Fills a fresh INBOX under a UIDVALIDITY of the test's choosing (not the clock's). */
export async function fill(s: MailStore, uidValidity: number, bodies: readonly Buffer[]): Promise<void> {
  await s.listMailboxes(); // an mbox store creates its INBOX when first listed
  await s.updateMailbox(INBOX, { uidValidity, restartUids: true });
  if (bodies.length > 0) await s.saveMessages(INBOX, bodies.map((b) => req(b)));
}
