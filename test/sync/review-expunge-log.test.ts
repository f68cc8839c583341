/**
 * An expunge crosses to the other side when that side's expunge log names the GUID. A GUID can
 * come back after it was expunged: a message moved to Trash and back keeps its Maildir basename,
 * and a store without native GUIDs names a new copy of a message by the same header hash. The old
 * expunge must not delete the message that came back.
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
import { message, readAll, req } from '../contract/store-contract.js';
import { ForeignStore } from '../support/foreign-store.js';

const INBOX = ['INBOX'];
const TRASH = ['Trash'];

function maildir(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

async function subjects(s: MailStore, box: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const m of (await s.getMessages(box)).messages) {
    const text = (await readAll(await s.openMessage(box, m.uid))).toString();
    out.push(/^Subject: (.*)$/m.exec(text)?.[1] ?? '?');
  }
  return out.sort();
}

/** Moves a message between mailboxes of one store, keeping its GUID (as a Maildir rename or an IMAP MOVE with X-GUID does). */
async function move(s: MailStore, from: string[], to: string[], uid: number): Promise<void> {
  const m = (await s.getMessages(from)).messages.find((x) => x.uid === uid)!;
  const body = await readAll(await s.openMessage(from, uid));
  await s.saveMessages(to, [req(body, { guid: m.guid, flags: m.flags, keywords: m.keywords })]);
  await s.expunge(from, [uid]);
}

async function withStores(kindA: 'maildir' | 'foreign', fn: (a: MailStore, b: MailStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-explog-'));
  const a = kindA === 'maildir' ? maildir(join(dir, 'a')) : ForeignStore.open(join(dir, 'a'));
  const b = maildir(join(dir, 'b'));
  try {
    await fn(a, b);
  } finally {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('a GUID that comes back after its expunge crossed', () => {
  for (const kindA of ['maildir', 'foreign'] as const) {
    it(`(${kindA} and Maildir) a message moved to Trash on B and back to INBOX on A ends in INBOX on both sides`, () =>
      withStores(kindA, async (a, b) => {
        await a.createMailbox(TRASH);
        await a.saveMessages(INBOX, [req(message('keep-me'))]);
        await runSync(a, b);
        assert.deepEqual(await subjects(b, INBOX), ['keep-me']);

        await move(b, INBOX, TRASH, (await b.getMessages(INBOX)).messages[0]!.uid);
        await runSync(a, b);
        assert.deepEqual([await subjects(a, INBOX), await subjects(a, TRASH)], [[], ['keep-me']], 'the move reached A');

        await move(a, TRASH, INBOX, (await a.getMessages(TRASH)).messages[0]!.uid);
        await runSync(a, b);
        await runSync(a, b);
        const all = [await subjects(a, INBOX), await subjects(a, TRASH), await subjects(b, INBOX), await subjects(b, TRASH)];
        assert.deepEqual(all, [['keep-me'], [], ['keep-me'], []], 'A INBOX, A Trash, B INBOX, B Trash');
      }));
  }

  it('(foreign and Maildir) a new copy of a message whose earlier copy was deleted reaches the other side', () =>
    withStores('foreign', async (a, b) => {
      const x = message('list-post');
      await a.saveMessages(INBOX, [req(x)]);
      await runSync(a, b);
      await b.expunge(INBOX, [(await b.getMessages(INBOX)).messages[0]!.uid]);
      await runSync(a, b);
      assert.deepEqual(await subjects(a, INBOX), [], 'the deletion crossed');

      await a.saveMessages(INBOX, [req(x)]); // delivered again later, e.g. a list resending it
      await runSync(a, b);
      assert.deepEqual(await subjects(a, INBOX), ['list-post'], 'the new delivery is kept on A');
      assert.deepEqual(await subjects(b, INBOX), ['list-post'], 'and copied to B');
    }));
});
