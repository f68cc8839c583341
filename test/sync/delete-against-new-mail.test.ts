/**
 * A folder deleted on one side while mail arrived in it on the other: the delete proves the
 * deletion of what the deleting side knew; mail it never saw survives, with a warning.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { runSync } from '../../src/sync/sync.js';
import { message } from '../contract/store-contract.js';
import { contents, mailboxDir, saveOne, tempRoots, withStores } from './maildir-pair.js';

for (const deleter of ['a', 'b'] as const) {
  it(`rm -rf of a folder on ${deleter} and a delivery into it on the other side keeps the new mail only`, async () => {
    const { dir, a, b } = await tempRoots('delete-new-mail');
    try {
      const work = ['Work'];
      await withStores(a, b, async (sa, sb) => {
        await sa.createMailbox(work);
        await saveOne(sa, work, 'old');
        await runSync(sa, sb);
      });
      const [gone, keeper] = deleter === 'a' ? [a, b] : [b, a];
      await rm(mailboxDir(gone, work), { recursive: true });
      writeFileSync(join(mailboxDir(keeper, work), 'new', '1700000002.M2P2.late'), message('late'));
      const warnings: string[] = [];
      await withStores(a, b, async (sa, sb) => {
        await runSync(sa, sb, { onEvent: (e) => e.type === 'warning' && warnings.push(e.message) });
        for (const s of [sa, sb]) assert.deepEqual((await contents(s, work)).map((l) => l.split(' ')[1]), ['1700000002.M2P2.late'], s.location);
        const again = await runSync(sa, sb);
        assert.equal(again.saved + again.expunged + again.treeActions, 0);
      });
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /never saw/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
