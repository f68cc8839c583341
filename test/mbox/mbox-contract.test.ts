import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { runStoreContract } from '../contract/store-contract.js';
import { mkfifo, runOwnFilesContract, type OwnFilesFixture } from '../contract/own-files-contract.js';

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

runOwnFilesContract({
  name: 'mbox',
  async open() {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-own-'));
    const root = join(dir, 'mail');
    const loc = parseLocation(`mbox:${root}`) as MboxLocation;
    const store = MboxStore.open(loc, { create: true, fsync: false, warn: () => {} });
    const files: OwnFilesFixture = {
      plantForeign() {
        mkdirSync(join(root, '.ssh'));
        writeFileSync(join(root, '.ssh', 'id_ed25519'), 'private key\n');
        mkdirSync(join(root, 'Projects', 'src'), { recursive: true });
        writeFileSync(join(root, 'Projects', 'src', 'main.c'), 'int main(void) { return 0; }\n');
        writeFileSync(join(root, 'notes.txt'), 'not mail\n');
        return ['.ssh', 'Projects', 'notes.txt'].map((n) => join(root, n));
      },
      linkTarget: 'file',
      plantMailboxLink: (name, outside) => symlinkSync(outside, join(root, name)),
      plantFifoMailbox: (name) => mkfifo(join(root, name)),
    };
    return { store, files, cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
});
