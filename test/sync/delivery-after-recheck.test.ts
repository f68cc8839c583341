/**
 * A run records each mailbox as in sync with the statuses its own re-check proved equal: mail
 * delivered after that re-check (while the run reads the statuses it records) must not be
 * recorded as synced, or the next run skips the mailbox and the message never reaches the
 * other side until something else changes there. Found by test/cli/concurrent-random.test.ts
 * (seed 1196632014).
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { it } from 'node:test';
import type { MailboxName, MailStore } from '../../src/storage/store.js';
import { runSync, type SyncOptions } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { INBOX, saveOne, tempRoots, withStores } from './maildir-pair.js';

/** Store A, where one message is delivered the first time a status is read after the run's re-check listing. */
function deliveringAfterRecheck(a: MailStore): { store: MailStore; delivered: () => boolean } {
  let listings = 0;
  let done = false;
  const store = new Proxy(a, {
    get(target, prop) {
      if (prop === 'getMessages') {
        return (...args: Parameters<MailStore['getMessages']>) => {
          listings++;
          return target.getMessages(...args);
        };
      }
      if (prop === 'mailboxStatus') {
        return async (name: MailboxName) => {
          if (listings >= 2 && !done) {
            done = true;
            await target.saveMessages(INBOX, [req(message('late'))]);
          }
          return target.mailboxStatus(name);
        };
      }
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store, delivered: () => done };
}

for (const [title, options] of [['sync', {}], ['sync -1', { mode: 'oneway' }]] as [string, SyncOptions][]) {
  it(`${title}: a message delivered to A after the run's re-check reaches B on the next run`, async () => {
    const { dir, a, b } = await tempRoots('delivery-after-recheck');
    try {
      await withStores(a, b, async (sa, sb) => {
        await saveOne(sa, INBOX, 'first');
        await runSync(sa, sb);
        await saveOne(sa, INBOX, 'second'); // so that the run has something to copy and re-checks
        const during = deliveringAfterRecheck(sa);
        await runSync(during.store, sb, options);
        assert.ok(during.delivered());
        const next = await runSync(sa, sb, options);
        assert.equal(next.skipped, 0, 'INBOX changed since the last recorded state');
        assert.equal((await sb.getMessages(INBOX)).messages.length, 3, 'the late message reached B');
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
