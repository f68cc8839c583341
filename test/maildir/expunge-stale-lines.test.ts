/**
 * An expunge leaves the uidlist as it was, as Dovecot does: the lines of removed files stay
 * until they are a quarter of the file, and are then dropped in one rewrite. doveadm must read
 * such a uidlist with the UIDs and GUIDs mailferry gave, and a GUID whose expunged line is
 * still there must not be saved under that line's name again.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { doveadmFetch, doveadmMailboxStatus, grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';

const INBOX = ['INBOX'];

function uidlistLines(root: string): string[] {
  return readFileSync(join(root, 'dovecot-uidlist'), 'utf8').split('\n').slice(1, -1);
}

function openStore(location: string, warnings: string[] = []): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(location), { create: true, fsync: false, warn: (m) => warnings.push(m) });
}

describe('expunges without a whole-uidlist rewrite', { timeout: 120_000 }, () => {
  let d: Dovecot;
  let scratch: string;
  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: false });
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-expunge-lines-'));
  });
  after(async () => {
    await d?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('an expunge keeps the uidlist file (inode, size, text), and doveadm reads its stale line as expunged', async () => {
    const root = join(scratch, 'keep', 'Maildir');
    const location = `maildir:${root}`;
    const mail = corpusMessages(13);
    const warnings: string[] = [];
    const store = openStore(location, warnings);
    let saved;
    try {
      saved = await store.saveMessages(INBOX, mail.slice(0, 12).map((m, i) => req(m, i % 2 ? { guid: `given-guid-${i}` } : {})));
      const path = join(root, 'dovecot-uidlist');
      const before = statSync(path, { bigint: true });
      const text = readFileSync(path, 'utf8');
      await store.expunge(INBOX, [3, 12]);
      const after = statSync(path, { bigint: true });
      assert.deepEqual([after.ino, after.size, after.mtimeNs], [before.ino, before.size, before.mtimeNs], 'the uidlist was not rewritten');
      assert.equal(readFileSync(path, 'utf8'), text);
      assert.deepEqual((await store.getMessages(INBOX)).messages.map((m) => m.uid), [1, 2, 4, 5, 6, 7, 8, 9, 10, 11]);
      // The stale line of UID 12 is the last one: its UID is still never handed out again.
      const [next] = await store.saveMessages(INBOX, [req(mail[12]!)]);
      assert.equal(next!.uid, 13);
      saved.push(next!);
    } finally {
      await store.close();
    }
    assert.deepEqual(warnings, []);
    await grantDovecotAccess(join(scratch, 'keep'));
    const fetched = await doveadmFetch(d, 'alice', location, 'INBOX');
    const want = saved.filter((s) => s.uid !== 3 && s.uid !== 12);
    assert.deepEqual(fetched.map((m) => [m.uid, m.guid]), want.map((s) => [s.uid, s.guid]));
    const status = await doveadmMailboxStatus(d, 'alice', location, 'INBOX');
    assert.deepEqual([status.messages, status.uidnext], [11, 14]);
  });

  it('stale lines are dropped once they reach a quarter of the uidlist; a line another program appended stays', async () => {
    const root = join(scratch, 'compress', 'Maildir');
    const location = `maildir:${root}`;
    const mail = corpusMessages(9);
    const store = openStore(location);
    try {
      await store.saveMessages(INBOX, mail.slice(0, 8).map((m) => req(m)));
      await store.expunge(INBOX, [2]);
      assert.equal(uidlistLines(root).length, 8, 'one stale line of eight: kept');
      // Delivered and listed by another program, as Dovecot's LDA appends.
      const delivered = '1700000000.M1P1.elsewhere,S=' + mail[8]!.length;
      writeFileSync(join(root, 'cur', `${delivered}:2,`), mail[8]!);
      appendFileSync(join(root, 'dovecot-uidlist'), `9 :${delivered}\n`);
      // The store's scan before the expunge finds the delivered file: eight messages, nine lines.
      await store.expunge(INBOX, [5]);
      assert.equal(uidlistLines(root).length, 9, 'two stale lines of nine: kept');
      await store.expunge(INBOX, [6]);
      const lines = uidlistLines(root);
      assert.deepEqual(lines.map((l) => Number(l.split(' ')[0])), [1, 3, 4, 7, 8, 9]);
      assert.match(lines.at(-1)!, new RegExp(`:${delivered.replace(/[.]/g, '\\.')}$`));
      const got = await store.getMessages(INBOX);
      assert.deepEqual(got.messages.map((m) => [m.uid, m.guid]).at(-1), [9, delivered]);
    } finally {
      await store.close();
    }
    await grantDovecotAccess(join(scratch, 'compress'));
    assert.deepEqual((await doveadmFetch(d, 'alice', location, 'INBOX')).map((m) => m.uid), [1, 3, 4, 7, 8, 9]);
  });

  it('a GUID saved again while its expunged line is still in the uidlist gets a file name of its own', async () => {
    const root = join(scratch, 'again', 'Maildir');
    const location = `maildir:${root}`;
    const mail = corpusMessages(8);
    const store = openStore(location);
    let rest: string[] = [];
    try {
      // Eight lines, so one stale line stays (below a quarter).
      const saved = await store.saveMessages(INBOX, [req(mail[0]!, { guid: 'kept-guid' }), req(mail[1]!, { guid: 'back-again' }), ...mail.slice(2).map((m) => req(m))]);
      rest = saved.slice(2).map((s) => s.guid);
      await store.expunge(INBOX, [2]);
      assert.equal(uidlistLines(root).filter((l) => l.endsWith(' :back-again')).length, 1, 'the stale line is there');
      const [again] = await store.saveMessages(INBOX, [req(mail[1]!, { guid: 'back-again' })]);
      assert.deepEqual([again!.uid, again!.guid], [9, 'back-again']);
      const names = uidlistLines(root).map((l) => l.slice(l.indexOf(' :') + 2));
      assert.equal(new Set(names).size, names.length, `no name listed twice: ${names.join(', ')}`);
    } finally {
      await store.close();
    }
    const want = [[1, 'kept-guid'], ...rest.map((g, i) => [i + 3, g]), [9, 'back-again']];
    // A fresh reader (its own index) sees no duplicate line and the GUID at its new UID.
    const warnings: string[] = [];
    const reader = openStore(`${location}:INDEX=${join(scratch, 'again-reader')}`, warnings);
    try {
      assert.deepEqual((await reader.getMessages(INBOX)).messages.map((m) => [m.uid, m.guid]), want);
    } finally {
      await reader.close();
    }
    assert.deepEqual(warnings, []);
    await grantDovecotAccess(join(scratch, 'again'));
    const fetched = await doveadmFetch(d, 'alice', location, 'INBOX');
    assert.deepEqual(fetched.map((m) => [m.uid, m.guid]), want);
  });
});
