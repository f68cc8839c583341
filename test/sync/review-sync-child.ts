/**
 * Child process for the interruption tests of two-way sync: runs one `runSync` between the
 * Maildirs given as argv[2] and argv[3]. MAILFERRY_FAILPOINT decides where it dies.
 */
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runSync } from '../../src/sync/sync.js';

async function main(): Promise<void> {
  const [rootA, rootB] = process.argv.slice(2);
  const open = (root: string) => MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
  const a = open(rootA!);
  const b = open(rootB!);
  await runSync(a, b);
  await a.close();
  await b.close();
}

if (process.argv[1]?.endsWith('review-sync-child.ts')) await main();
