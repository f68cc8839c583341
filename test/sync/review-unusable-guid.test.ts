/**
 * SaveRequest.guid: "a new one is made when absent or not usable by the store". A GUID the
 * Maildir cannot keep (not a basename, and not writable as a uidlist G field) must not fail the save.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { message, req } from '../contract/store-contract.js';

describe('GUIDs a Maildir cannot keep', () => {
  it('a GUID with a space is replaced by a GUID of the store, not refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-guid-'));
    const s = MaildirStore.open(parseMaildirLocation(`maildir:${dir}`), { create: true, fsync: false, warn: () => {} });
    try {
      const saved = await s.saveMessages(['INBOX'], [req(message('a'), { guid: 'a b/c' }), req(message('b'), { guid: 'x:y/z' })]);
      assert.equal(saved.length, 2);
      assert.equal((await s.getMessages(['INBOX'])).messages.length, 2);
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
