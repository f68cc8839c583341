/**
 * A two-way sync that renumbers messages saves copies of messages of the same mailbox: the
 * requests it hands over open their bodies from the very store that is saving, while the
 * save holds the mailbox's lock between chunks. Those reads must not wait for that lock.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { SAVE_CHUNK } from '../../src/storage/mbox/mbox-mailbox.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import type { SaveRequest } from '../../src/storage/store.js';
import { message, readAll, req } from '../contract/store-contract.js';

it('a save whose requests read messages of the same mailbox, over several chunks', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-self-'));
  const count = SAVE_CHUNK + 50;
  const store = MboxStore.open(parseLocation(`mbox:${join(dir, 'mail')}:INDEX=${join(dir, 'idx')}`) as MboxLocation, {
    create: true,
    fsync: false,
    lockTimeoutSeconds: 2,
    warn: () => {},
  });
  try {
    const originals = Array.from({ length: count }, (_, i) => message(`original ${i}`, `body ${i}\n`));
    const first = await store.saveMessages(['INBOX'], originals.map((m) => req(m)));
    async function* copies(): AsyncGenerator<SaveRequest> {
      for (const [i, m] of first.entries()) {
        // Opened before it is handed over, as the sync engine does.
        const body = await store.openMessage(['INBOX'], m.uid);
        yield { uid: count + 1 + i, flags: [], keywords: [], receivedDate: Date.UTC(2024, 0, 1), copyOf: m.uid, body: () => body };
      }
    }
    const saved = await store.saveMessages(['INBOX'], copies());
    assert.deepEqual(saved.map((m) => m.uid), Array.from({ length: count }, (_, i) => count + 1 + i));
    const { messages } = await store.getMessages(['INBOX']);
    assert.equal(messages.length, 2 * count);
    for (const [i, m] of messages.entries()) {
      assert.ok((await readAll(await store.openMessage(['INBOX'], m.uid))).equals(originals[i % count]!), `message ${m.uid} is whole`);
    }
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
