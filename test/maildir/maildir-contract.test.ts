import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runStoreContract } from '../contract/store-contract.js';

for (const layout of ['', ':LAYOUT=fs'] as const) {
  runStoreContract({
    name: `maildir${layout || ' (Maildir++)'}`,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-contract-'));
      const loc = parseMaildirLocation(`maildir:${join(dir, 'Maildir')}${layout}`);
      const open = async () => MaildirStore.open(loc, { create: true, fsync: false, warn: () => {} });
      return { store: await open(), reopen: open, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  });
}
