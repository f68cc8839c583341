import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { runStoreContract } from '../contract/store-contract.js';

runStoreContract({
  name: 'mbox',
  async open() {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-contract-'));
    const loc = parseLocation(`mbox:${join(dir, 'mail')}`) as MboxLocation;
    const open = async () => MboxStore.open(loc, { create: true, fsync: false, warn: () => {} });
    return { store: await open(), reopen: open, cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
  skip: [
    {
      test: 'rename keeps the GUID and the messages, and is logged',
      reason: 'an mbox mailbox is a file, so it cannot also be the parent of Old/Child (as in Dovecot); renames are covered in test/mbox/mbox-store.test.ts',
    },
  ],
});
