import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runStoreContract } from '../contract/store-contract.js';
import { mkfifo, runOwnFilesContract, type OwnFilesFixture } from '../contract/own-files-contract.js';

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

for (const layout of ['', ':LAYOUT=fs'] as const) {
  runOwnFilesContract({
    name: `maildir${layout || ' (Maildir++)'}`,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-own-'));
      const root = join(dir, 'Maildir');
      const loc = parseMaildirLocation(`maildir:${root}${layout}`);
      const store = MaildirStore.open(loc, { create: true, fsync: false, warn: () => {} });
      const at = (name: string) => join(root, layout ? name : `.${name}`);
      const files: OwnFilesFixture = {
        plantForeign() {
          // What a home directory, or a Maildir that other programs share, holds besides mail.
          mkdirSync(join(root, '.ssh'));
          writeFileSync(join(root, '.ssh', 'id_ed25519'), 'private key\n');
          mkdirSync(join(root, '.notmuch', 'xapian'), { recursive: true });
          mkdirSync(join(root, 'Projects', 'src'), { recursive: true });
          writeFileSync(join(root, 'Projects', 'src', 'main.c'), 'int main(void) { return 0; }\n');
          writeFileSync(join(root, 'notes.txt'), 'not mail\n');
          return ['.ssh', '.notmuch', 'Projects', 'notes.txt'].map((n) => join(root, n));
        },
        linkTarget: 'directory',
        plantMailboxLink: (name, outside) => symlinkSync(outside, at(name)),
        plantFifoMailbox: (name) => mkfifo(at(name)),
        plantInInbox(outside) {
          symlinkSync(outside, join(root, 'new', '1700000000.M1P1.evil'));
          mkfifo(join(root, 'cur', '1700000001.M1P1.fifo:2,'));
        },
      };
      return { store, files, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  });
}
