/**
 * A parent renamed on one side to the name its child took on the other: on the second side the
 * child must move under its own old name, which no store can do in one step.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { it } from 'node:test';
import type { MailboxName } from '../../src/storage/store.js';
import { planTreeTwoWay } from '../../src/sync/tree-twoway.js';
import { runSync } from '../../src/sync/sync.js';
import { contents, saveOne, tempRoots, withStores } from './maildir-pair.js';

it('A renames Work to New while B renames Work.Sub to New: both end with New, New.Sub, New.Sub.Deep and all the mail', async () => {
  const { dir, a, b } = await tempRoots('rename-into-child');
  try {
    const names: MailboxName[] = [['Work'], ['Work', 'Sub'], ['Work', 'Sub', 'Deep']];
    const guids = await withStores(a, b, async (sa, sb) => {
      const out = [];
      for (const n of names) {
        await sa.createMailbox(n);
        out.push((await saveOne(sa, n, n.join('-'))).guid);
      }
      await runSync(sa, sb);
      await sa.renameMailbox(['Work'], ['New']);
      await sb.renameMailbox(['Work', 'Sub'], ['New']);
      return out;
    });
    await withStores(a, b, async (sa, sb) => {
      const r = await runSync(sa, sb);
      assert.equal(r.changedDuringSync, false);
      for (const s of [sa, sb]) {
        assert.deepEqual((await s.listMailboxes()).mailboxes.map((m) => m.name.join('/')).sort(), ['INBOX', 'New', 'New/Sub', 'New/Sub/Deep'], s.location);
        for (const [i, n] of [['New'], ['New', 'Sub'], ['New', 'Sub', 'Deep']].entries()) {
          assert.deepEqual((await contents(s, n)).map((l) => l.split(' ')[1]), [guids[i]], `${n.join('/')} in ${s.location}`);
        }
      }
      const again = await runSync(sa, sb);
      assert.equal(again.treeActions + again.saved + again.expunged, 0);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('the planner never renames a folder into its own child: it parks it under a temporary name first', () => {
  const box = (name: string[], guid: string) => ({ name, guid, uidValidity: 1, uidNext: 1, highestModseq: 1, messages: 0, specialUse: [], subscribed: false });
  const plan = planTreeTwoWay(
    { mailboxes: [box(['New'], 'aa'), box(['New', 'Sub'], 'bb')], changes: [{ type: 'rename', guid: 'aa', name: ['New'], oldName: ['Work'], timestamp: 10 }] },
    { mailboxes: [box(['Work'], 'aa'), box(['New'], 'bb')], changes: [] },
  );
  const renames = plan.b.filter((x) => x.type === 'rename');
  let names = new Map<string, MailboxName>([['aa', ['Work']], ['bb', ['New']]]);
  for (const r of renames) {
    if (r.type !== 'rename') continue;
    const from = names.get(r.guid)!;
    assert.ok(!(r.to.length > from.length && from.every((p, i) => r.to[i] === p)), `${from.join('/')} -> ${r.to.join('/')}`);
    names = new Map([...names].map(([g, n]) => [g, g === r.guid ? r.to : n.length > from.length && from.every((p, i) => n[i] === p) ? [...r.to, ...n.slice(from.length)] : n]));
  }
  assert.deepEqual(Object.fromEntries(names), { aa: ['New'], bb: ['New', 'Sub'] });
});
