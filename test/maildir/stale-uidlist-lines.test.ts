/**
 * A uidlist line whose file is gone is ordinary (Dovecot leaves them after every expunge and
 * drops them at its next rewrite): reading such a mailbox must not rewrite the uidlist, or the
 * source of `sync -1` or `backup` would be written to by merely being read.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { INBOX, openMaildir, saveOne, tempRoots, withStores } from '../sync/maildir-pair.js';

function unlinkMessage(root: string, guid: string): void {
  const file = readdirSync(join(root, 'cur')).find((f) => f.startsWith(guid));
  assert.ok(file, guid);
  unlinkSync(join(root, 'cur', file));
}

it('a scan that finds listed files gone records the expunges and leaves the uidlist as it is', async () => {
  const { dir, a } = await tempRoots('stale-lines');
  try {
    const s = openMaildir(a);
    try {
      const saved = [await saveOne(s, INBOX, 'one'), await saveOne(s, INBOX, 'two'), await saveOne(s, INBOX, 'three')];
      const uidlist = readFileSync(join(a, 'dovecot-uidlist'), 'utf8');
      unlinkMessage(a, saved[1]!.guid);
      const got = await s.getMessages(INBOX);
      assert.deepEqual(got.messages.map((m) => m.uid), [1, 3]);
      assert.deepEqual(got.expunged.map((e) => [e.uid, e.guid]), [[2, saved[1]!.guid]]);
      assert.equal(got.uidNext, 4);
      assert.equal(readFileSync(join(a, 'dovecot-uidlist'), 'utf8'), uidlist);
      // The stale line goes at the next write, as Dovecot does it; the UID is never handed out again.
      const four = await saveOne(s, INBOX, 'four');
      assert.equal(four.uid, 4);
      assert.deepEqual((await s.getMessages(INBOX)).messages.map((m) => m.uid), [1, 3, 4]);
    } finally {
      await s.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

for (const mode of ['sync -1', 'backup'] as const) {
  it(`${mode} from a source whose uidlist names deleted files leaves that uidlist untouched`, async () => {
    const { dir, a, b } = await tempRoots('stale-lines-source');
    try {
      const guids = await withStores(a, b, async (sa, sb) => {
        const out = [];
        for (let i = 1; i <= 10; i++) out.push((await saveOne(sa, INBOX, `m${i}`)).guid);
        await runBackup(sa, sb);
        return out;
      });
      // A MUA deletes the last message; the uidlist keeps its line.
      unlinkMessage(a, guids[9]!);
      const uidlist = readFileSync(join(a, 'dovecot-uidlist'), 'utf8');
      await withStores(a, b, async (sa, sb) => {
        if (mode === 'backup') await runBackup(sa, sb);
        else await runSync(sa, sb, { mode: 'oneway' });
        assert.equal((await sb.getMessages(INBOX)).messages.length, mode === 'backup' ? 9 : 10);
      });
      assert.equal(readFileSync(join(a, 'dovecot-uidlist'), 'utf8'), uidlist);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
