/**
 * The store contract, run against a RemoteStore served over an in-process pipe: the same
 * suite every local store passes, now through the protocol, for a Maildir (compressed and
 * not) and an mbox behind it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStoreContract } from '../contract/store-contract.js';
import { connectInProcess } from './serve-in-process.js';

const targets = [
  { name: 'remote maildir over a pipe (deflate)', location: (d: string) => `maildir:${join(d, 'Maildir')}`, compress: true },
  { name: 'remote maildir:LAYOUT=fs over a pipe (plain)', location: (d: string) => `maildir:${join(d, 'Maildir')}:LAYOUT=fs`, compress: false },
  { name: 'remote mbox over a pipe (deflate)', location: (d: string) => `mbox:${join(d, 'mail')}`, compress: true },
];

for (const t of targets) {
  runStoreContract({
    name: t.name,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-remote-contract-'));
      const location = t.location(dir);
      const open = async () => (await connectInProcess(location, { compress: t.compress })).store;
      return { store: await open(), reopen: open, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
    skip: t.location('').startsWith('mbox:')
      ? [{ test: 'rename keeps the GUID and the messages, and is logged', reason: 'an mbox mailbox is a file and cannot be the parent of Old/Child (see mbox-contract.test.ts)' }]
      : [],
  });
}
