/**
 * Stores without native GUIDs name a message by its header hash until it adopts a GUID, so two
 * copies of one message in one mailbox (a mailing list delivering twice, a user's copy) share a
 * GUID there. Planning by GUID must still keep every copy and make a second run a no-op.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { ForeignStore } from '../support/foreign-store.js';

const INBOX = ['INBOX'];

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-dup-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function maildir(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

async function count(s: MailStore): Promise<number> {
  return (await s.getMessages(INBOX)).messages.length;
}

describe('two copies of one message on a side without native GUIDs', () => {
  it('backup between two such stores keeps both copies, and the second run is a no-op', () =>
    withDir(async (dir) => {
      const src = ForeignStore.open(join(dir, 'src'));
      const dst = ForeignStore.open(join(dir, 'dst'));
      try {
        const x = message('twice');
        await src.saveMessages(INBOX, [req(x), req(x), req(message('once'))]);
        await runBackup(src, dst);
        assert.equal(await count(dst), 3, 'the first backup copies all three');
        const second = await runBackup(src, dst);
        assert.equal(await count(dst), 3, 'the second backup must not drop a copy');
        assert.deepEqual([second.saved, second.expunged, second.flagUpdates], [0, 0, 0], 'the second backup is a no-op');
      } finally {
        await src.close();
        await dst.close();
      }
    }));

  it('sync between two such stores copies both copies to the side that has none', () =>
    withDir(async (dir) => {
      const a = ForeignStore.open(join(dir, 'a'));
      const b = ForeignStore.open(join(dir, 'b'));
      try {
        const x = message('twice');
        await a.saveMessages(INBOX, [req(x), req(x)]);
        await b.saveMessages(INBOX, [req(x)]);
        await runSync(a, b);
        await runSync(a, b);
        assert.equal(await count(a), 2);
        assert.equal(await count(b), 2, 'B holds as many copies as A after the sync');
      } finally {
        await a.close();
        await b.close();
      }
    }));

  it('one of two copies deleted on the foreign side is deleted on the Maildir side too', () =>
    withDir(async (dir) => {
      const a = ForeignStore.open(join(dir, 'a'));
      const b = maildir(join(dir, 'b'));
      try {
        const x = message('twice');
        await a.saveMessages(INBOX, [req(x), req(x)]);
        await runSync(a, b);
        assert.equal(await count(b), 2, 'both copies reach the Maildir');
        const uids = (await a.getMessages(INBOX)).messages.map((m) => m.uid);
        await a.expunge(INBOX, [uids[0]!]);
        await runSync(a, b);
        await runSync(a, b);
        assert.equal(await count(a), 1);
        assert.equal(await count(b), 1, 'the Maildir follows the deletion');
      } finally {
        await a.close();
        await b.close();
      }
    }));

  it('control: Maildir copies with distinct GUIDs pair one to one with the foreign copies', () =>
    withDir(async (dir) => {
      const a = maildir(join(dir, 'a'));
      const b = ForeignStore.open(join(dir, 'b'));
      try {
        const x = message('twice');
        await a.saveMessages(INBOX, [req(x), req(x), req(message('other'))]);
        await b.saveMessages(INBOX, [req(x), req(message('b-only'))]);
        await runSync(a, b);
        assert.equal(await count(a), 4);
        assert.equal(await count(b), 4);
        const again = await runSync(a, b);
        assert.deepEqual([again.saved, again.expunged, again.flagUpdates, again.changedDuringSync], [0, 0, 0, false]);
      } finally {
        await a.close();
        await b.close();
      }
    }));
});
