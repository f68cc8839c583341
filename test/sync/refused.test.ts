/**
 * A store may refuse a message and save the rest (an IMAP server rejecting one): the run says
 * so, counts only what was saved, and asks to be run again (exit 2); nothing else is lost.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailboxName, MailStore, SaveRequest } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';

/** Refuses every message carrying the keyword `refuse-me`, as a server refuses what it cannot store. */
function refusing(inner: MaildirStore): MailStore {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop !== 'saveMessages') {
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      }
      return (name: MailboxName, reqs: Iterable<SaveRequest> | AsyncIterable<SaveRequest>) => {
        async function* accepted(): AsyncGenerator<SaveRequest> {
          for await (const r of reqs) if (!r.keywords.includes('refuse-me')) yield r;
        }
        return target.saveMessages(name, accepted());
      };
    },
  }) as MailStore;
}

it('a message the destination refuses: the rest is saved, the count is honest, the run asks to be run again', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-refused-'));
  const open = (p: string) => MaildirStore.open(parseMaildirLocation(`maildir:${join(dir, p)}`), { create: true, fsync: false, warn: () => {} });
  const [a, b, c] = [open('a'), open('b'), open('c')];
  try {
    await a.saveMessages(['INBOX'], [req(message('one')), req(message('bad'), { keywords: ['refuse-me'] }), req(message('three'))]);
    const warnings: string[] = [];
    const r = await runSync(a, refusing(b), { onEvent: (e) => e.type === 'warning' && warnings.push(e.message) });
    assert.equal(r.saved, 2);
    assert.equal(r.changedDuringSync, true, 'exit 2: run again');
    assert.match(warnings.join('\n'), /1 of 3 messages were not saved/);
    assert.equal((await b.getMessages(['INBOX'])).messages.length, 2);
    assert.equal((await a.getMessages(['INBOX'])).messages.length, 3, 'nothing is lost at the source');

    const rb = await runBackup(a, refusing(c));
    assert.equal(rb.saved, 2);
    assert.equal(rb.changedDuringSync, true);
  } finally {
    for (const s of [a, b, c]) await s.close();
    await rm(dir, { recursive: true, force: true });
  }
});
