/**
 * On A a folder renamed and a new one made under the old name; on B a flag change and a
 * deletion in the old folder: B's changes land in the renamed folder, and the new one stays new.
 */
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { runSync } from '../../src/sync/sync.js';
import { message } from '../contract/store-contract.js';
import { contents, mailboxDir, muaSetFlags, saveOne, tempRoots, withStores } from './maildir-pair.js';

it('a rename and a new folder under the old name: changes follow the directory, no GUID is taken', async () => {
  const { dir, a, b } = await tempRoots('rename-recreate');
  try {
    const archive = ['Archive'];
    const [g1, g2] = await withStores(a, b, async (sa, sb) => {
      await sa.createMailbox(archive);
      const saved = [await saveOne(sa, archive, 'one'), await saveOne(sa, archive, 'two')];
      await runSync(sa, sb);
      return saved.map((m) => m.guid);
    });
    renameSync(mailboxDir(a, archive), mailboxDir(a, ['Papers']));
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(mailboxDir(a, archive), sub), { recursive: true });
    writeFileSync(join(mailboxDir(a, archive), 'maildirfolder'), '');
    writeFileSync(join(mailboxDir(a, archive), 'new', '1700000001.M1P1.fresh'), message('fresh'));
    muaSetFlags(b, archive, g1!, 'F');
    await withStores(a, b, async (sa, sb) => {
      const uid2 = (await sb.getMessages(archive)).messages.find((m) => m.guid === g2)!.uid;
      await sb.expunge(archive, [uid2]);
    });
    const warnings: string[] = [];
    await withStores(a, b, async (sa, sb) => {
      await runSync(sa, sb, { onEvent: (e) => e.type === 'warning' && warnings.push(e.message) });
      for (const s of [sa, sb]) {
        assert.deepEqual(await contents(s, ['Papers']), [`1 ${g1} \\Flagged`], s.location);
        assert.deepEqual((await contents(s, archive)).map((l) => l.split(' ')[1]), ['1700000001.M1P1.fresh'], s.location);
      }
      const guids = (await sa.listMailboxes()).mailboxes.map((m) => m.guid);
      assert.equal(new Set(guids).size, guids.length);
    });
    assert.deepEqual(warnings, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
