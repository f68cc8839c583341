/**
 * A GUID held twice in a mailbox at different sizes (two messages, not the leftover of a
 * renumbering): one side deletes one copy while the other changes the other copy's flags.
 * The deletion must reach the other side once, both paths (incremental and whole) alike, and
 * the next run must find nothing to do.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import type { MailStore } from '../../src/storage/store.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { INBOX, openMaildir, tempRoots } from './maildir-pair.js';

async function state(s: MailStore) {
  return (await s.getMessages(INBOX)).messages.map((m) => `${m.uid} ${m.guid} ${m.size} ${[...m.flags].sort()}`);
}

it(
  'one of two copies of a GUID deleted on A while B flags the other: deleted once, both paths alike',
  // Copies pair by their order among the GUID's UIDs, not by UID, and an expunge counts as no
  // proof while the side still holds the GUID: the deleted copy comes back and every run exits 2.
  { todo: 'copies of one GUID are paired by order, and deletionProof ignores an expunge while the GUID is still held' },
  async () => {
    const roots = await tempRoots('copy-expunge');
    try {
      {
        const a = openMaildir(roots.a);
        const b = openMaildir(roots.b);
        const [first] = await a.saveMessages(INBOX, [req(message('orig', 'short\n'))]);
        await a.saveMessages(INBOX, [req(message('other'))]);
        await a.saveMessages(INBOX, [req(message('orig', 'a longer body of another size\n'), { guid: first!.guid })]);
        await runSync(a, b);
        await a.expunge(INBOX, [first!.uid]);
        await b.updateFlags(INBOX, [{ uid: 3, flags: ['\\Flagged'], keywords: [] }]);
        await a.close();
        await b.close();
      }
      cpSync(roots.dir, `${roots.dir}-whole`, { recursive: true });
      const out: Record<string, { runs: unknown[]; a: string[]; b: string[] }> = {};
      for (const [label, dir, noIncremental] of [['incremental', roots.dir, false], ['whole', `${roots.dir}-whole`, true]] as const) {
        const a = openMaildir(join(dir, 'a'));
        const b = openMaildir(join(dir, 'b'));
        try {
          const runs = [];
          for (let i = 0; i < 3; i++) {
            const r = await runSync(a, b, { noIncremental });
            runs.push({ saved: r.saved, expunged: r.expunged, flagUpdates: r.flagUpdates, changed: r.changedDuringSync });
            if (!r.changedDuringSync) break;
          }
          out[label] = { runs, a: await state(a), b: await state(b) };
        } finally {
          await a.close();
          await b.close();
        }
      }
      assert.deepEqual(out.incremental, out.whole);
      assert.equal(out.whole!.runs.length, 1, 'one run settles it');
      assert.deepEqual(out.whole!.a, out.whole!.b);
      assert.equal(out.whole!.a.length, 2, 'the deleted copy stays deleted');
      assert.match(out.whole!.a.find((l) => l.startsWith('3 '))!, /\\Flagged/);
    } finally {
      await rm(`${roots.dir}-whole`, { recursive: true, force: true });
      await rm(roots.dir, { recursive: true, force: true });
    }
  },
);
