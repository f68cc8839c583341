/**
 * A scan that finds new files in a mailbox adds their lines at the end of dovecot-uidlist, as
 * Dovecot does, instead of writing the whole file anew: the file keeps its inode and every byte
 * before the new lines, and doveadm reads the UIDs and GUIDs the scan gave. The whole file is
 * still written for repairs and once Dovecot would compress it.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { uidlistWantsRewrite } from '../../src/storage/maildir/uidlist.js';
import type { MailboxName } from '../../src/storage/store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { doveadmFetch, doveadmMailboxStatus, grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';
import { runTsChild } from '../support/run-ts-child.js';

/** A folder name with a space, a dot-free unicode part and an apostrophe, as users name them. */
const BOX: MailboxName = ["Reçus d'été 2026"];
const BOX_DIR = ".Re&AOc-us d'&AOk-t&AOk- 2026";
const CHILD = join(import.meta.dirname, 'scan-child.ts');

function openStore(location: string, warnings: string[] = []): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(location), { create: true, fsync: false, warn: (m) => warnings.push(m) });
}

/** Drops a message into the mailbox the way a delivery agent does, unseen by any index. */
function deliver(dir: string, sub: 'new' | 'cur', basename: string, body: Buffer): void {
  writeFileSync(join(dir, sub, sub === 'cur' ? `${basename}:2,S` : basename), body);
}

function uidlistState(dir: string) {
  const path = join(dir, 'dovecot-uidlist');
  const st = statSync(path, { bigint: true });
  return { ino: st.ino, text: readFileSync(path, 'utf8') };
}

it("follows Dovecot's rule for a uidlist that gets new lines: appended below a quarter of stale lines, rewritten from there", () => {
  assert.equal(uidlistWantsRewrite(0, 0, 1), false);
  assert.equal(uidlistWantsRewrite(10, 10, 2), false);
  // 8 lines, 5 files still there, 1 new: 9 lines would hold 6 messages, 75% of 9 is 6.
  assert.equal(uidlistWantsRewrite(8, 5, 1), true);
  assert.equal(uidlistWantsRewrite(8, 6, 1), false);
  assert.equal(uidlistWantsRewrite(100_000, 74_997, 10), true);
  assert.equal(uidlistWantsRewrite(100_000, 74_998, 10), false);
});

describe('a scan appends the lines of new files to dovecot-uidlist', { timeout: 120_000 }, () => {
  let d: Dovecot;
  let scratch: string;
  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: false });
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-scan-append-'));
  });
  after(async () => {
    await d?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('new files get lines after the existing ones (same inode, same bytes before them); doveadm reads their UIDs and GUIDs', async () => {
    const root = join(scratch, 'append', 'Maildir');
    const location = `maildir:${root}`;
    const dir = join(root, BOX_DIR);
    const mail = corpusMessages(9);
    const warnings: string[] = [];
    const store = openStore(location, warnings);
    try {
      await store.createMailbox(BOX);
      const saved = await store.saveMessages(BOX, mail.slice(0, 6).map((m, i) => req(m, i % 2 ? { guid: `given-${i}` } : {})));
      assert.deepEqual((await store.getMessages(BOX)).messages.map((m) => m.uid), [1, 2, 3, 4, 5, 6]);
      const before = uidlistState(dir);
      // Delivered by other programs: two into new/ (out of delivery order), one into cur/.
      deliver(dir, 'new', '1700000300.M3P9.mx', mail[6]!);
      deliver(dir, 'new', '1700000100.M1P9.mx', mail[7]!);
      deliver(dir, 'cur', '1700000200.M2P9.mx', mail[8]!);
      // A message read and flagged by a client meanwhile: a rename, no new line.
      const first = readdirSync(join(dir, 'cur')).find((f) => f.startsWith(saved[0]!.guid))!;
      const renamed = first.replace(/:2,.*$/, ':2,FS');
      writeFileSync(join(dir, 'cur', renamed), readFileSync(join(dir, 'cur', first)));
      unlinkSync(join(dir, 'cur', first));

      const got = await store.getMessages(BOX);
      const after = uidlistState(dir);
      assert.equal(after.ino, before.ino, 'the uidlist was appended to, not replaced');
      assert.ok(after.text.startsWith(before.text), 'every byte before the new lines is kept');
      assert.equal(after.text.slice(before.text.length), '7 :1700000100.M1P9.mx\n8 :1700000200.M2P9.mx\n9 :1700000300.M3P9.mx\n');
      assert.deepEqual(got.messages.slice(6).map((m) => [m.uid, m.guid]), [[7, '1700000100.M1P9.mx'], [8, '1700000200.M2P9.mx'], [9, '1700000300.M3P9.mx']]);
      assert.deepEqual(got.messages[0]!.flags, ['\\Flagged', '\\Seen']);
      assert.equal(got.uidNext, 10);
      // Read again with nothing new: no write at all.
      deliver(dir, 'cur', '1700000400.M4P9.mx', mail[0]!);
      unlinkSync(join(dir, 'cur', '1700000400.M4P9.mx:2,S'));
      await store.getMessages(BOX);
      assert.deepEqual(uidlistState(dir), after);
      const want = [...saved.map((s) => [s.uid, s.guid]), [7, '1700000100.M1P9.mx'], [8, '1700000200.M2P9.mx'], [9, '1700000300.M3P9.mx']];
      assert.deepEqual(got.messages.map((m) => [m.uid, m.guid]), want);
    } finally {
      await store.close();
    }
    assert.deepEqual(warnings, []);
    await grantDovecotAccess(join(scratch, 'append'));
    const fetched = await doveadmFetch(d, 'alice', location, BOX[0]!);
    assert.deepEqual(fetched.map((m) => m.uid), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(fetched.slice(6).map((m) => m.guid), ['1700000100.M1P9.mx', '1700000200.M2P9.mx', '1700000300.M3P9.mx']);
    assert.deepEqual(fetched[0]!.flags, ['\\Flagged', '\\Seen']);
    assert.equal((await doveadmMailboxStatus(d, 'alice', location, BOX[0]!)).uidnext, 10);
  });

  it('new files beside a quarter of stale lines: the whole uidlist is written without them', async () => {
    const root = join(scratch, 'compress', 'Maildir');
    const location = `maildir:${root}`;
    const mail = corpusMessages(9);
    const store = openStore(location);
    try {
      const saved = await store.saveMessages(['INBOX'], mail.slice(0, 8).map((m) => req(m)));
      // A client deletes three of eight; the scan records the expunges and writes nothing.
      for (const s of saved.slice(2, 5)) unlinkSync(join(root, 'cur', readdirSync(join(root, 'cur')).find((f) => f.startsWith(s.guid))!));
      const kept = uidlistState(root);
      assert.deepEqual((await store.getMessages(['INBOX'])).messages.map((m) => m.uid), [1, 2, 6, 7, 8]);
      assert.deepEqual(uidlistState(root), kept, 'expunges found by a scan write nothing');
      // One new file: nine lines would name six messages, so Dovecot would compress; so do we.
      deliver(root, 'new', '1700000100.M1P9.mx', mail[8]!);
      const got = await store.getMessages(['INBOX']);
      assert.deepEqual(got.messages.map((m) => m.uid), [1, 2, 6, 7, 8, 9]);
      const after = uidlistState(root);
      assert.notEqual(after.ino, kept.ino, 'written anew');
      assert.deepEqual(after.text.split('\n').slice(1, -1).map((l) => Number(l.split(' ')[0])), [1, 2, 6, 7, 8, 9]);
    } finally {
      await store.close();
    }
    await grantDovecotAccess(join(scratch, 'compress'));
    assert.deepEqual((await doveadmFetch(d, 'alice', location, 'INBOX')).map((m) => m.uid), [1, 2, 6, 7, 8, 9]);
  });

  it('a line another program appended while we listed is not numbered twice', async () => {
    const root = join(scratch, 'raced', 'Maildir');
    const location = `maildir:${root}`;
    const mail = corpusMessages(3);
    const store = openStore(location);
    try {
      await store.saveMessages(['INBOX'], [req(mail[0]!)]);
      // Delivered and listed by Dovecot's LDA (file, then its line), and one more file unlisted.
      deliver(root, 'new', '1700000100.M1P9.mx', mail[1]!);
      appendFileSync(join(root, 'dovecot-uidlist'), '5 :1700000100.M1P9.mx\n');
      deliver(root, 'new', '1700000200.M2P9.mx', mail[2]!);
      const got = await store.getMessages(['INBOX']);
      assert.deepEqual(got.messages.map((m) => [m.uid, m.guid]).slice(1), [[5, '1700000100.M1P9.mx'], [6, '1700000200.M2P9.mx']]);
      const lines = uidlistState(root).text.split('\n').slice(1, -1);
      assert.deepEqual(lines.slice(1), ['5 :1700000100.M1P9.mx', '6 :1700000200.M2P9.mx']);
    } finally {
      await store.close();
    }
  });

  for (const point of ['scan-before-uidlist', 'scan-after-uidlist']) {
    it(`a scan killed at ${point} while appending: the next scan lists each file once, at one UID`, async () => {
      const root = join(scratch, `killed-${point}`, 'Maildir');
      const location = `maildir:${root}`;
      const mail = corpusMessages(5);
      const store = openStore(location);
      try {
        await store.saveMessages(['INBOX'], mail.slice(0, 3).map((m) => req(m)));
      } finally {
        await store.close();
      }
      const before = uidlistState(root);
      deliver(root, 'new', '1700000100.M1P9.mx', mail[3]!);
      deliver(root, 'new', '1700000200.M2P9.mx', mail[4]!);
      const end = await runTsChild(CHILD, [root, '["INBOX"]'], { env: { MAILFERRY_FAILPOINT: point } });
      assert.equal(end.signal, 'SIGKILL');
      const killed = uidlistState(root);
      assert.equal(killed.ino, before.ino);
      assert.equal(killed.text, point === 'scan-before-uidlist' ? before.text : `${before.text}4 :1700000100.M1P9.mx\n5 :1700000200.M2P9.mx\n`);
      const again = openStore(location);
      try {
        const got = await again.getMessages(['INBOX']);
        assert.deepEqual(got.messages.map((m) => m.uid), [1, 2, 3, 4, 5]);
        assert.deepEqual(got.messages.slice(3).map((m) => m.guid), ['1700000100.M1P9.mx', '1700000200.M2P9.mx']);
        const lines = uidlistState(root).text.split('\n').slice(1, -1);
        assert.equal(lines.length, 5, `each file listed once: ${lines.join(' | ')}`);
      } finally {
        await again.close();
      }
      await grantDovecotAccess(join(scratch, `killed-${point}`));
      assert.deepEqual((await doveadmFetch(d, 'alice', location, 'INBOX')).map((m) => m.uid), [1, 2, 3, 4, 5]);
    });
  }
});
