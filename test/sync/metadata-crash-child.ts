/**
 * Child process for the tests that kill a run after its mail changes but before it records
 * what it did: runs `sync`, `sync -1` or `backup` between the Maildirs argv[3] and argv[4].
 */
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';

async function main(): Promise<void> {
  const [mode, rootA, rootB] = process.argv.slice(2);
  const open = (root: string) => MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
  const [a, b] = [open(rootA!), open(rootB!)];
  if (mode === 'backup') await runBackup(a, b);
  else await runSync(a, b, { mode: mode === 'sync1' ? 'oneway' : 'twoway' });
  await a.close();
  await b.close();
}

if (process.argv[1]?.endsWith('metadata-crash-child.ts')) await main();
