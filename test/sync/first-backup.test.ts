/**
 * A first backup into a fresh destination: the INBOX the destination made on open is empty,
 * so it simply takes the source's UIDVALIDITY and UIDs; nothing is rebuilt.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { it } from 'node:test';
import { runBackup, type BackupEvent } from '../../src/sync/backup.js';
import { INBOX, saveOne, tempRoots, withStores } from './maildir-pair.js';

it('a fresh Maildir destination gets the source UIDs and UIDVALIDITY, with no rebuild', async () => {
  const { dir, a, b } = await tempRoots('first-backup');
  try {
    await withStores(a, b, async (src) => {
      await src.createMailbox(['Work']);
      for (const [box, uid] of [[INBOX, 3], [INBOX, 7], [['Work'], 2]] as const) await saveOne(src, box, `m${uid}`, { uid });
    });
    await withStores(a, b, async (src, dst) => {
      const events: BackupEvent[] = [];
      const result = await runBackup(src, dst, { onEvent: (e) => events.push(e) });
      assert.equal(result.rebuilt, 0);
      assert.deepEqual(events.filter((e) => e.type === 'mailbox' && e.plan.rebuild), []);
      for (const box of [INBOX, ['Work']]) {
        const [s, d] = [await src.getMessages(box), await dst.getMessages(box)];
        assert.equal(d.uidValidity, s.uidValidity);
        assert.equal(d.uidNext, s.uidNext);
        assert.deepEqual(d.messages.map((m) => [m.uid, m.guid]), s.messages.map((m) => [m.uid, m.guid]));
      }
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
