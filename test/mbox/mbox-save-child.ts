/**
 * Child process for the mbox interruption tests. `save`: saves synthetic messages g0..g{n-1}
 * (g7 is 3 MB, so it streams) into INBOX of the mbox location argv[2], skipping GUIDs already
 * there, in batches of argv[4]. `churn`: flags every message and expunges every third one.
 * MAILFERRY_FAILPOINT decides where it dies.
 */
import { Readable } from 'node:stream';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';

export function syntheticMboxBody(i: number): Buffer {
  const filler = i === 7 ? 'y'.repeat(3 * 1024 * 1024) : 'x'.repeat((i * 7919) % 5000);
  return Buffer.from(`Subject: message ${i}\nMessage-ID: <m${i}@test>\n\nbody ${i}\nFrom inside Mon Jan  1 10:00:00 2024\n${filler}\n`);
}

async function main(): Promise<void> {
  const [location, countText, batchText, mode = 'save'] = process.argv.slice(2);
  const store = MboxStore.open(parseLocation(location!) as MboxLocation, { create: true, fsync: true, warn: () => {} });
  const { messages } = await store.getMessages(['INBOX']);
  if (mode === 'churn') {
    await store.updateFlags(['INBOX'], messages.map((m) => ({ uid: m.uid, flags: ['\\Flagged'], keywords: ['churned'] })));
    await store.expunge(['INBOX'], messages.filter((m) => Number(m.guid.slice(1)) % 3 === 0).map((m) => m.uid));
  } else {
    const present = new Set(messages.map((m) => m.guid));
    const count = Number(countText);
    const batch = Number(batchText ?? count);
    const todo = Array.from({ length: count }, (_, i) => i).filter((i) => !present.has(`g${i}`));
    for (let start = 0; start < todo.length; start += batch) {
      await store.saveMessages(
        ['INBOX'],
        todo.slice(start, start + batch).map((i) => ({
          guid: `g${i}`,
          flags: i % 2 ? ['\\Seen' as const] : [],
          keywords: i % 3 ? [] : ['$Important'],
          receivedDate: Date.UTC(2020, 0, 1) + i * 1000,
          body: () => Readable.from([syntheticMboxBody(i)]),
        })),
      );
    }
  }
  await store.close();
}

if (process.argv[1]?.endsWith('mbox-save-child.ts')) await main();
