/**
 * Saves into a Maildir note each file's wanted UID and GUID (pending_saves) before renaming the
 * batch into cur/, then take the uidlist lock and append it. A scan by another store on the same
 * Maildir that runs between the renames and the append sees those files as new.
 */
import assert from 'node:assert/strict';
import { writeFileSync, unlinkSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { message, req } from '../contract/store-contract.js';

const INBOX = ['INBOX'];

function open(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

describe('a save and a scan of the same Maildir at once', () => {
  it('a file renamed into cur/ by an unfinished save keeps the one UID a concurrent reader saw, listed once in the uidlist', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-pending-'));
    const root = join(dir, 'm');
    const saver = open(root);
    const reader = open(root);
    try {
      await saver.saveMessages(INBOX, [req(message('first'))]);
      await reader.getMessages(INBOX);
      // Someone holds the uidlist lock (a live process: not stale), so the save waits after its renames.
      const lock = join(root, 'dovecot-uidlist.lock');
      writeFileSync(lock, `${process.pid}:${hostname()}`);
      const saving = saver.saveMessages(INBOX, [req(message('second'), { guid: 'wanted-guid', uid: 5 })]);
      await sleep(30);
      unlinkSync(lock);
      // The other store reads the mailbox before the save got the lock back.
      const seen = await reader.getMessages(INBOX);
      const saved = await saving;
      const after = (await reader.getMessages(INBOX)).messages;
      const again = (await saver.getMessages(INBOX)).messages;
      const uidlist = readFileSync(join(root, 'dovecot-uidlist'), 'utf8');
      const seenUid = seen.messages.find((m) => m.guid === 'wanted-guid')?.uid;
      const entries = uidlist.split('\n').filter((l) => l.endsWith(':wanted-guid'));
      assert.equal(entries.length, 1, `the uidlist lists the file once:\n${uidlist}`);
      assert.equal(after.length, 2);
      assert.equal(again.length, 2);
      const finalUid = after.find((m) => m.guid === 'wanted-guid')?.uid;
      assert.equal(saved[0]?.uid, finalUid, 'the save reports the UID the message has');
      assert.equal(finalUid, seenUid ?? finalUid, `a UID another reader has seen (${seenUid}) stays the message's UID`);
    } finally {
      await saver.close();
      await reader.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
