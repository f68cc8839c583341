/**
 * `sync -1` as its man page describes it: the destination's own deletions are never brought
 * back, the source is never written, and two messages claiming one UID both get new UIDs in
 * the destination.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { contents, INBOX, saveOne, tempRoots, withStores } from './maildir-pair.js';

it("the man page's example: 1-5 backed up, 6 delivered to the source, 1 expunged in the destination", async () => {
  const { dir, a, b } = await tempRoots('oneway-example');
  try {
    const guids = await withStores(a, b, async (sa, sb) => {
      const out: string[] = [];
      for (let i = 1; i <= 5; i++) out.push((await saveOne(sa, INBOX, `m${i}`)).guid);
      await runBackup(sa, sb);
      out.push((await saveOne(sa, INBOX, 'm6')).guid);
      await sb.expunge(INBOX, [1]);
      return out;
    });
    const before = await withStores(a, b, (sa) => contents(sa, INBOX));
    const uidlist = readFileSync(join(a, 'dovecot-uidlist'), 'utf8');
    await withStores(a, b, async (sa, sb) => {
      await runSync(sa, sb, { mode: 'oneway' });
      assert.deepEqual((await contents(sb, INBOX)).map((l) => l.split(' ')[1]), guids.slice(1));
      assert.deepEqual((await sb.getMessages(INBOX)).messages.map((m) => m.uid), [2, 3, 4, 5, 6]);
      assert.deepEqual(await contents(sa, INBOX), before);
    });
    assert.equal(readFileSync(join(a, 'dovecot-uidlist'), 'utf8'), uidlist, 'the source uidlist is untouched');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('a UID clash: both messages get new UIDs above both UIDNEXTs, in the destination only', async () => {
  const { dir, a, b } = await tempRoots('oneway-clash');
  try {
    await withStores(a, b, async (sa, sb) => {
      await saveOne(sa, INBOX, 'common');
      await runBackup(sa, sb);
      const fromA = await saveOne(sa, INBOX, 'only in the source');
      const fromB = await saveOne(sb, INBOX, 'only in the destination');
      assert.equal(fromA.uid, fromB.uid);
      const source = await contents(sa, INBOX);
      await runSync(sa, sb, { mode: 'oneway' });
      assert.deepEqual(await contents(sa, INBOX), source);
      const dest = (await sb.getMessages(INBOX)).messages;
      const uidOf = (g: string) => dest.find((m) => m.guid === g)?.uid;
      assert.ok(uidOf(fromA.guid)! >= 3 && uidOf(fromB.guid)! >= 3, JSON.stringify(dest.map((m) => [m.uid, m.guid])));
      assert.equal(dest.length, 3);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
