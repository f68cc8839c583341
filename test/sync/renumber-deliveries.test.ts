/**
 * Runs that each see mail arrive while they renumber clashing UIDs, and so exit 2, and then a
 * run that converges: a renumbering (save at the new UID, expunge the old one) proves no
 * deletion, so every message ends up on both sides, once.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { runSync } from '../../src/sync/sync.js';
import { message } from '../contract/store-contract.js';
import { INBOX, tempRoots, withStores } from './maildir-pair.js';

let serial = 0;
/** A delivery agent's write into new/; the basename becomes the GUID. */
function deliver(root: string, count: number, tag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const base = `${1_700_000_000 + ++serial}.M${serial}P1.${tag}`;
    writeFileSync(join(root, 'new', base), message(`${tag}-${serial}`));
    out.push(base);
  }
  return out;
}

it('three runs that exit 2 under deliveries on both sides, then a converging run, lose nothing', async () => {
  const { dir, a, b } = await tempRoots('renumber-deliveries');
  try {
    await withStores(a, b, async () => {});
    const all = [...deliver(a, 15, "a"), ...deliver(b, 15, "b")];
    await withStores(a, b, (sa, sb) => runSync(sa, sb));
    const codes: boolean[] = [];
    for (let run = 0; run < 3; run++) {
      all.push(...deliver(a, 8, "a"), ...deliver(b, 8, "b"));
      let saves = 0;
      const result = await withStores(a, b, (sa, sb) =>
        runSync(run % 2 ? sb : sa, run % 2 ? sa : sb, {
          onEvent: (e) => {
            if (e.type === 'saved' && ++saves % 4 === 1) all.push(...deliver(a, 2, 'a'), ...deliver(b, 2, 'b'));
          },
        }),
      );
      codes.push(result.changedDuringSync);
    }
    assert.ok(codes.some((c) => c), 'deliveries during the runs were noticed');
    let converged = false;
    for (let tries = 0; tries < 4 && !converged; tries++) converged = !(await withStores(a, b, (sa, sb) => runSync(sa, sb))).changedDuringSync;
    assert.ok(converged);
    const expected = [...all].sort();
    await withStores(a, b, async (sa, sb) => {
      for (const s of [sa, sb]) assert.deepEqual((await s.getMessages(INBOX)).messages.map((m) => m.guid).sort(), expected, s.location);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
