/**
 * A backup leaves the same agreed flags a sync leaves: a later sync merges both sides' changes
 * to one message flag by flag, also when the backup skipped the unchanged mailbox.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { it } from 'node:test';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { contents, INBOX, muaSetFlags, saveOne, tempRoots, withStores } from './maildir-pair.js';

for (const backups of [1, 2]) {
  it(`after ${backups} backup(s), \\Flagged on one side and \\Answered on the other both survive a sync`, async () => {
    const { dir, a, b } = await tempRoots('flags-after-backup');
    try {
      const guid = await withStores(a, b, async (sa, sb) => {
        const m = await saveOne(sa, INBOX, 'one', { flags: ['\\Seen'] });
        for (let i = 0; i < backups; i++) await runBackup(sa, sb);
        return m.guid;
      });
      muaSetFlags(a, INBOX, guid, 'FS');
      muaSetFlags(b, INBOX, guid, 'RS');
      await withStores(a, b, async (sa, sb) => {
        await runSync(sa, sb);
        const want = [`1 ${guid} \\Answered,\\Flagged,\\Seen`];
        assert.deepEqual(await contents(sa, INBOX), want);
        assert.deepEqual(await contents(sb, INBOX), want);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
