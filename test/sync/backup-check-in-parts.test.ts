/**
 * A backup's final check of a mailbox bigger than its part size reads the destination back a
 * part at a time (equal-in-parts.ts) instead of listing it whole. It must prove exactly what the
 * whole check proves: equal at every UID and nothing more in the destination than its status
 * counted; a change another program makes meanwhile is found (the run says so, nothing is
 * recorded) and nothing is lost.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import type { MailboxName, MailStore } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { equalInParts } from '../../src/sync/equal-in-parts.js';
import { sameAtEveryUid } from '../../src/sync/mailbox-plan.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { contents, INBOX, mailboxDir, muaSetFlags, openMaildir, tempRoots } from './maildir-pair.js';

const ODD: MailboxName = ['Reports 2024', 'Été final'];

/** Counts the parts read back, and runs `during` before the first one is read. */
function watched(store: MailStore, seen: { parts: number }, during?: (name: MailboxName) => void): MailStore {
  return new Proxy(store, {
    get(t, p) {
      if (p === 'getMessagesOf') {
        return (n: MailboxName, which: { uids: ReadonlySet<number>; guids: ReadonlySet<string> }) => {
          if (seen.parts++ === 0) during?.(n);
          return t.getMessagesOf!(n, which);
        };
      }
      const v = Reflect.get(t, p, t) as unknown;
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

async function seeded(prefix: string) {
  const roots = await tempRoots(prefix);
  const a = openMaildir(roots.a);
  await a.createMailbox(ODD);
  await a.saveMessages(INBOX, Array.from({ length: 10 }, (_, i) => req(message(`m${i}`), { flags: i % 3 === 0 ? ['\\Seen'] : [], keywords: i === 4 ? ['todo'] : [] })));
  await a.saveMessages(ODD, Array.from({ length: 7 }, (_, i) => req(message(`r${i}`))));
  await a.close();
  return roots;
}

it('a backup read back in parts records the proven state the whole check records, and the copy is exact', async () => {
  const roots = await seeded('check-parts');
  try {
    const a = openMaildir(roots.a);
    const b = openMaildir(roots.b);
    const seen = { parts: 0 };
    const r = await runBackup(a, watched(b, seen), { checkPart: 3 });
    assert.equal(r.changedDuringSync, false);
    assert.equal(r.saved, 17);
    assert.equal(seen.parts, 4 + 3, 'INBOX in 4 parts of 3, the other mailbox in 3');
    for (const box of [INBOX, ODD]) {
      assert.deepEqual(await contents(b, box), await contents(a, box));
      const guid = (await a.mailboxStatus(box))!.guid;
      assert.equal((await a.getPairState(b.storeId))[guid]?.proven, true);
      assert.equal((await b.getPairState(a.storeId))[guid]?.proven, true);
    }
    await a.close();
    await b.close();
  } finally {
    await rm(roots.dir, { recursive: true, force: true });
  }
});

it('a flag another program changes in the destination while it is read back is found: the run says so and records nothing', async () => {
  const roots = await seeded('check-parts-flag');
  try {
    const a = openMaildir(roots.a);
    const b = openMaildir(roots.b);
    const [first] = (await a.getMessages(INBOX)).messages;
    const r = await runBackup(a, watched(b, { parts: 0 }, (n) => assert.deepEqual(n, INBOX) === undefined && muaSetFlags(roots.b, INBOX, first!.guid, 'FS')), { checkPart: 3 });
    assert.equal(r.changedDuringSync, true);
    assert.deepEqual(await b.getPairState(a.storeId), {});
    // The next backup makes the destination equal again.
    const again = await runBackup(a, b, { checkPart: 3 });
    assert.equal(again.changedDuringSync, false);
    assert.deepEqual(await contents(b, INBOX), await contents(a, INBOX));
    await a.close();
    await b.close();
  } finally {
    await rm(roots.dir, { recursive: true, force: true });
  }
});

it('mail delivered to the destination while it is read back is found (its UIDNEXT moved): the run says so, records nothing, and a sync carries the mail back', async () => {
  const roots = await seeded('check-parts-delivery');
  try {
    const a = openMaildir(roots.a);
    const b = openMaildir(roots.b);
    const deliver = (n: MailboxName) => writeFileSync(join(mailboxDir(roots.b, n), 'new', '1700000000.M1P1.elsewhere'), message('delivered meanwhile'));
    const r = await runBackup(a, watched(b, { parts: 0 }, deliver), { checkPart: 3 });
    assert.equal(r.changedDuringSync, true);
    assert.deepEqual(await b.getPairState(a.storeId), {});
    const s = await runSync(a, b);
    assert.equal(s.changedDuringSync, false);
    const [inbox, odd] = [await contents(a, INBOX), await contents(a, ODD)];
    assert.equal(inbox.length + odd.length, 10 + 7 + 1);
    assert.ok([...inbox, ...odd].some((l) => l.includes('1700000000.M1P1.elsewhere')), 'the delivered message reached the source');
    assert.deepEqual(await contents(b, INBOX), inbox);
    assert.deepEqual(await contents(b, ODD), odd);
    await a.close();
    await b.close();
  } finally {
    await rm(roots.dir, { recursive: true, force: true });
  }
});

const metaAt = (uid: number) => ({ uid, guid: `g${uid}`, flags: [], keywords: [], modseq: 1, receivedDate: 0, size: 1 });

// A listing from a peer is not trusted to be in order: each part checks its own, the whole order is checked once.
it('a source listing whose UIDs are not increasing across a part boundary is not found equal in parts', async () => {
  const source = { uidValidity: 1, uidNext: 7, highestModseq: 1, messages: [1, 2, 3, 2, 5, 6].map(metaAt), expunged: [], incremental: false };
  const destAll = [1, 2, 3, 4, 5, 6].map(metaAt); // message 4 is not the source's
  const dest = {
    getMessagesOf: async (_n: unknown, w: { uids: ReadonlySet<number> }) => ({ uidValidity: 1, uidNext: 7, highestModseq: 1, messages: destAll.filter((m) => w.uids.has(m.uid)) }),
  };
  const after = { uidValidity: 1, uidNext: 7, messages: 6 };
  assert.equal(sameAtEveryUid(source as never, { uidValidity: 1, uidNext: 7, messages: destAll } as never), false);
  assert.equal(await equalInParts(dest as never, ['INBOX'], source as never, after as never, 3), false);
});
