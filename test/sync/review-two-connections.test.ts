/**
 * Two Maildir stores (two index connections) on one Maildir in one process, writes interleaved:
 * each store's view (the index rows it keeps between reads, the mailboxes it scanned this
 * session) must always equal what a freshly opened store reads.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailStore, SystemFlag } from '../../src/storage/store.js';
import { message, req } from '../contract/store-contract.js';

const INBOX = ['INBOX'];

function open(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

async function view(s: MailStore): Promise<string> {
  const c = await s.getMessages(INBOX);
  return JSON.stringify([c.uidNext, c.highestModseq, c.messages.map((m) => [m.uid, m.guid, m.flags, m.keywords, m.modseq])]);
}

function rng(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
}

describe('two stores on one Maildir in one process', () => {
  for (const seed of [1, 2, 3]) {
    it(`interleaved saves, flag changes and expunges: both views equal a fresh store's (seed ${seed})`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-conn-'));
      const root = join(dir, 'm');
      const stores = [open(root), open(root)];
      const random = rng(seed);
      try {
        for (let step = 0; step < 60; step++) {
          const s = stores[Math.floor(random() * 2)]!;
          const current = (await s.getMessages(INBOX)).messages;
          const op = random();
          if (op < 0.4 || current.length === 0) {
            await s.saveMessages(INBOX, [req(message(`m${step}`))]);
          } else if (op < 0.8) {
            const m = current[Math.floor(random() * current.length)]!;
            const flags: SystemFlag[] = random() < 0.5 ? ['\\Seen'] : ['\\Flagged'];
            await s.updateFlags(INBOX, [{ uid: m.uid, flags, keywords: random() < 0.5 ? ['$Work'] : [] }]);
          } else {
            await s.expunge(INBOX, [current[Math.floor(random() * current.length)]!.uid]);
          }
          // Each store reads the other's writes (no third connection commits in between).
          assert.equal(await view(stores[0]!), await view(stores[1]!), `the two stores agree after step ${step}`);
        }
        const fresh = open(root);
        try {
          const truth = await view(fresh);
          assert.equal(await view(stores[0]!), truth, 'store 0 at the end');
          assert.equal(await view(stores[1]!), truth, 'store 1 at the end');
        } finally {
          await fresh.close();
        }
      } finally {
        for (const s of stores) await s.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
