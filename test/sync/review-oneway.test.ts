/**
 * `sync -1` merges A into B and never records a pair state, so "changed since the last sync" is
 * measured against the last two-way run: a change A made before an earlier `sync -1` still counts
 * as new at every later `sync -1`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { ForeignStore } from '../support/foreign-store.js';

const INBOX = ['INBOX'];

async function flagsOf(s: MailStore): Promise<string[][]> {
  return (await s.getMessages(INBOX)).messages.map((m) => [...m.flags, ...m.keywords].sort());
}

for (const kind of ['Maildir', 'foreign'] as const) {
  describe(`sync -1 into a ${kind} destination`, () => {
    it('a second sync -1 with no change at A is a no-op: it does not undo a flag change B made in between', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-oneway-'));
      const a = MaildirStore.open(parseMaildirLocation(`maildir:${join(dir, 'a')}`), { create: true, fsync: false, warn: () => {} });
      const b: MailStore = kind === 'Maildir'
        ? MaildirStore.open(parseMaildirLocation(`maildir:${join(dir, 'b')}`), { create: true, fsync: false, warn: () => {} })
        : ForeignStore.open(join(dir, 'b'));
      try {
        await a.saveMessages(INBOX, [req(message('x'))]);
        await runSync(a, b);
        await a.updateFlags(INBOX, [{ uid: 1, flags: ['\\Seen'], keywords: [] }]);
        await runSync(a, b, { mode: 'oneway' });
        assert.deepEqual(await flagsOf(b), [['\\Seen']], 'A\'s change reached B');
        const uidB = (await b.getMessages(INBOX)).messages[0]!.uid;
        await b.updateFlags(INBOX, [{ uid: uidB, flags: [], keywords: [] }]); // B's user marks it unread
        const r = await runSync(a, b, { mode: 'oneway' });
        assert.deepEqual(await flagsOf(b), [[]], 'B\'s newer change stays: A did not touch the message since');
        assert.equal(r.flagUpdates, 0);
      } finally {
        await a.close();
        await b.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
