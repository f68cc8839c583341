/**
 * Child process for the interruption tests: saves synthetic messages `g0..g{n-1}` into
 * INBOX of the Maildir given as argv[2], skipping GUIDs already there (as a re-run of a sync
 * would), in batches of argv[4] messages. MAILFERRY_FAILPOINT decides where it dies.
 */
import { Readable } from 'node:stream';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';

export function syntheticBody(i: number): Buffer {
  const filler = 'x'.repeat((i * 7919) % 5000);
  return Buffer.from(`Subject: message ${i}\nMessage-ID: <m${i}@test>\n\nbody ${i}\n${filler}\n`);
}

async function main(): Promise<void> {
  const [location, countText, batchText] = process.argv.slice(2);
  const count = Number(countText);
  const batch = Number(batchText ?? count);
  const store = MaildirStore.open(parseMaildirLocation(location!), { create: true, fsync: false, warn: () => {} });
  const present = new Set((await store.getMessages(['INBOX'])).messages.map((m) => m.guid));
  const todo = Array.from({ length: count }, (_, i) => i).filter((i) => !present.has(`g${i}`));
  for (let start = 0; start < todo.length; start += batch) {
    await store.saveMessages(
      ['INBOX'],
      todo.slice(start, start + batch).map((i) => ({
        guid: `g${i}`,
        uid: 2 * i + 1, // with gaps, so a UID that only follows file order is caught
        flags: i % 2 ? ['\\Seen' as const] : [],
        keywords: i % 3 ? [] : ['$Important'],
        receivedDate: Date.UTC(2020, 0, 1) + i * 1000,
        body: () => Readable.from([syntheticBody(i)]),
      })),
    );
  }
  await store.close();
}

if (process.argv[1]?.endsWith('save-child.ts')) await main();
