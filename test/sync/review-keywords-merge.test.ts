/**
 * Per-flag merge with more keywords than Maildir has letters (a-z): the ones past the 26th live
 * only in the index, and a conflict must still merge them one by one.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';

const INBOX = ['INBOX'];
const KW = Array.from({ length: 30 }, (_, i) => `$kw${String(i).padStart(2, '0')}`);

function open(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

async function keywordsOf(s: MailStore): Promise<string[]> {
  return [...(await s.getMessages(INBOX)).messages[0]!.keywords].sort();
}

describe('per-flag merge past the 26th keyword', () => {
  it('A adds a 31st keyword and drops the 2nd, B drops the 29th: all three changes survive, in both directions of the run', async () => {
    for (const reversed of [false, true]) {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-kw-'));
      const a = open(join(dir, 'a'));
      const b = open(join(dir, 'b'));
      try {
        await a.saveMessages(INBOX, [req(message('x'), { keywords: KW })]);
        await runSync(a, b);
        assert.deepEqual(await keywordsOf(b), KW);
        await a.updateFlags(INBOX, [{ uid: 1, flags: [], keywords: [...KW.filter((k) => k !== '$kw01'), '$kw30'] }]);
        await b.updateFlags(INBOX, [{ uid: 1, flags: ['\\Seen'], keywords: KW.filter((k) => k !== '$kw28') }]);
        if (reversed) await runSync(b, a);
        else await runSync(a, b);
        const want = [...KW.filter((k) => k !== '$kw01' && k !== '$kw28'), '$kw30'].sort();
        assert.deepEqual(await keywordsOf(a), want);
        assert.deepEqual(await keywordsOf(b), want);
        // Reopened: the keywords past the 26th come back from the index.
        await a.close();
        const a2 = open(join(dir, 'a'));
        assert.deepEqual(await keywordsOf(a2), want);
        const again = await runSync(a2, b);
        assert.deepEqual([again.saved, again.flagUpdates, again.expunged, again.changedDuringSync], [0, 0, 0, false]);
        await a2.close();
      } finally {
        await a.close().catch(() => {});
        await b.close();
        await rm(dir, { recursive: true, force: true });
      }
    }
  });
});
