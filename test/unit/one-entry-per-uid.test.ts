/**
 * A store that lists one UID twice (as a server with a broken index does) must not make a
 * backup empty and re-copy the mailbox on every run: the engine keeps the first entry per UID.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailboxName, MailStore } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { oneEntryPerUid } from '../../src/sync/hash-match.js';
import { message, req } from '../contract/store-contract.js';

/** The Maildir, except that its listing names the last UID a second time, with another GUID. */
function listingTwice(inner: MaildirStore): MailStore {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'getMessages') {
        return async (name: MailboxName, since?: number) => {
          const r = await target.getMessages(name, since);
          const last = r.messages.at(-1);
          return last ? { ...r, messages: [...r.messages, { ...last, guid: 'feedfacefeedfacefeedfacefeedface', flags: [] }] } : r;
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as MailStore;
}

test('oneEntryPerUid keeps the first entry of each UID and leaves a clean listing as it is', () => {
  const m = (uid: number, guid: string) => ({ uid, guid, flags: [], keywords: [], modseq: 1, receivedDate: 0, size: 1 });
  const clean = { uidValidity: 1, uidNext: 3, highestModseq: 1, messages: [m(1, 'a'), m(2, 'b')], expunged: [], incremental: false };
  assert.equal(oneEntryPerUid(clean), clean);
  assert.deepEqual(oneEntryPerUid({ ...clean, messages: [m(1, 'a'), m(2, 'b'), m(2, 'c'), m(1, 'd')] }).messages, [m(1, 'a'), m(2, 'b')]);
});

test('a source listing one UID twice: the second backup rebuilds nothing and finds nothing changed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-dup-uid-'));
  const open = (n: string) => MaildirStore.open(parseMaildirLocation(`maildir:${join(dir, n)}`), { create: true, fsync: false, warn: () => {} });
  const a = open('a');
  const b = open('b');
  try {
    await a.saveMessages(['INBOX'], [1, 2, 3].map((i) => req(message(`m${i}`))));
    const source = listingTwice(a);
    const first = await runBackup(source, b);
    assert.equal(first.rebuilt, 0);
    for (const full of [false, true]) {
      const again = await runBackup(source, b, { full });
      assert.equal(again.rebuilt, 0, 'not emptied and copied again');
      assert.equal(again.saved + again.expunged, 0);
      assert.equal(again.changedDuringSync, false, 'exit 0, not 2');
    }
    assert.equal((await b.getMessages(['INBOX'])).messages.length, 3);
  } finally {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
});
