/**
 * Stateful sync (`-s`): the caller keeps the pair state and hands it back. A run that saw changes
 * under it (exit 2) hands back an empty state, so the next run knows nothing about who changed
 * what: it must still not throw away a flag change one side made since.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { decodeState, encodeState } from '../../src/sync/state-string.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';

const INBOX = ['INBOX'];

function open(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

async function flagsOf(s: MailStore): Promise<string[][]> {
  return (await s.getMessages(INBOX)).messages.map((m) => [...m.flags].sort());
}

/** What the CLI prints for -s after a run: the encoded state, or '' after exit 2. */
function printed(r: Awaited<ReturnType<typeof runSync>>): string {
  return r.changedDuringSync ? '' : encodeState(r.state);
}

describe('-s state string', () => {
  it('after a run that exited 2, a flag B removed since is not put back by A on the next -s run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-state-'));
    const a = open(join(dir, 'a'));
    const b = open(join(dir, 'b'));
    try {
      await a.saveMessages(INBOX, [req(message('x'), { flags: ['\\Seen'] })]);
      let state = printed(await runSync(a, b, { state: decodeState('') }));
      assert.notEqual(state, '');
      // A run during which new mail arrives at B: exit 2, and the CLI prints ''.
      await a.saveMessages(INBOX, [req(message('y'))]);
      let injected = false;
      const r2 = await runSync(a, b, {
        state: decodeState(state),
        full: true,
        onEvent: (e) => {
          if (e.type === 'mailbox' && !injected) {
            injected = true;
            // A delivery agent drops new mail into B meanwhile.
            writeFileSync(join(dir, 'b', 'new', '1700000000.late.host'), message('late'));
          }
        },
      });
      state = printed(r2);
      assert.equal(r2.changedDuringSync, true, 'the run saw a change under it');
      assert.equal(state, '', 'the CLI hands back an empty state');
      assert.deepEqual((await flagsOf(a))[0], ['\\Seen']);
      assert.deepEqual((await flagsOf(b))[0], ['\\Seen']);
      // B's user marks x unread.
      await b.updateFlags(INBOX, [{ uid: 1, flags: [], keywords: [] }]);
      await runSync(a, b, { state: decodeState(state) });
      assert.deepEqual((await flagsOf(b))[0], [], 'B\'s change stays');
      assert.deepEqual((await flagsOf(a))[0], [], 'and reaches A');
    } finally {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
