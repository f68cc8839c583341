/**
 * Real Maildirs in a temp dir for engine tests: open, save, change flags as a MUA does, and
 * read back what a mailbox holds.
 */
import { readdirSync, renameSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailboxName, MailStore, SavedMessage, SystemFlag } from '../../src/storage/store.js';
import { message, req } from '../contract/store-contract.js';

export const INBOX: MailboxName = ['INBOX'];

export function openMaildir(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

export async function tempRoots(prefix: string): Promise<{ dir: string; a: string; b: string }> {
  const dir = await mkdtemp(join(tmpdir(), `mailferry-${prefix}-`));
  return { dir, a: join(dir, 'a'), b: join(dir, 'b') };
}

/** Opens both stores, runs `fn`, closes them whatever happens. */
export async function withStores<T>(a: string, b: string, fn: (sa: MaildirStore, sb: MaildirStore) => Promise<T>): Promise<T> {
  const sa = openMaildir(a);
  const sb = openMaildir(b);
  try {
    return await fn(sa, sb);
  } finally {
    await sa.close();
    await sb.close();
  }
}

export function mailboxDir(root: string, name: MailboxName): string {
  return name.length === 1 && name[0] === 'INBOX' ? root : join(root, `.${name.join('.')}`);
}

/** What a MUA does to change flags: rename the file to carry other letters. */
export function muaSetFlags(root: string, name: MailboxName, guid: string, letters: string): void {
  for (const sub of ['cur', 'new']) {
    const dir = join(mailboxDir(root, name), sub);
    const hit = readdirSync(dir).find((f) => f === guid || f.startsWith(`${guid}:`));
    if (!hit) continue;
    renameSync(join(dir, hit), join(mailboxDir(root, name), 'cur', `${guid}:2,${[...letters].sort().join('')}`));
    return;
  }
  throw new Error(`no file for ${guid} in ${name.join('/')}`);
}

export async function saveOne(s: MailStore, box: MailboxName, subject: string, opts: { flags?: SystemFlag[]; uid?: number } = {}): Promise<SavedMessage> {
  const [saved] = await s.saveMessages(box, [req(message(subject), { flags: opts.flags ?? [], ...(opts.uid ? { uid: opts.uid } : {}) })]);
  return saved!;
}

/** `uid guid flags` per message, by UID. */
export async function contents(s: MailStore, box: MailboxName): Promise<string[]> {
  return (await s.getMessages(box)).messages.map((m) => `${m.uid} ${m.guid} ${[...m.flags].sort().join(',')}`);
}
