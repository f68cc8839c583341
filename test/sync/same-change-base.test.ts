/**
 * Both sides made the same flag change, so a run finds nothing to do in the mailbox: it must
 * still record that flag as agreed. Otherwise the older base makes the change look new on one
 * side at the next conflict, and undoing it on the other side is lost.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { it } from 'node:test';
import type { MailStore } from '../../src/storage/store.js';
import { runSync, type SyncOptions } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { INBOX, tempRoots, withStores } from './maildir-pair.js';

const flagsOf = async (s: MailStore) => (await s.getMessages(INBOX)).messages.map((m) => [...m.flags].sort().join(' '));

for (const [title, options] of [['two-way sync', {}], ['sync -1', { mode: 'oneway' }]] as [string, SyncOptions][]) {
  it(`${title}: \\Seen set on both sides, then removed in A while B flags the message: \\Seen stays removed`, async () => {
    const { dir, a, b } = await tempRoots('same-change-base');
    try {
      await withStores(a, b, async (sa, sb) => {
        await sa.saveMessages(INBOX, [req(message('x'))]);
        await runSync(sa, sb);
        await sa.updateFlags(INBOX, [{ uid: 1, flags: ['\\Seen'], keywords: [] }]);
        await sb.updateFlags(INBOX, [{ uid: 1, flags: ['\\Seen'], keywords: [] }]);
        const same = await runSync(sa, sb, options);
        assert.equal(same.flagUpdates + same.saved, 0, 'nothing to do');
        await sa.updateFlags(INBOX, [{ uid: 1, flags: [], keywords: [] }]);
        await sb.updateFlags(INBOX, [{ uid: 1, flags: ['\\Flagged', '\\Seen'], keywords: [] }]);
        await runSync(sa, sb, options);
        assert.deepEqual(await flagsOf(sb), ['\\Flagged']);
        assert.deepEqual(await flagsOf(sa), options.mode === 'oneway' ? [''] : ['\\Flagged']);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
