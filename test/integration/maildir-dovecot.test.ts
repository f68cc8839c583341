/**
 * Dovecot as the oracle: a Maildir Dovecot wrote reads back in mailferry with Dovecot's UIDs,
 * GUIDs, flags, keywords and mailbox GUIDs; a Maildir mailferry wrote reads back in doveadm
 * with the UIDs, GUIDs, flags, keywords and folder names mailferry chose.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { readAll, req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import {
  doveadmFetch,
  doveadmMailboxList,
  doveadmMailboxStatus,
  grantDovecotAccess,
  startDovecot,
  type Dovecot,
} from '../support/dovecot.js';

/** What both sides must agree on for one mailbox. */
async function assertSameAsDoveadm(d: Dovecot, location: string | undefined, store: MailStore, name: string[]): Promise<void> {
  const shown = name.join(store.separator);
  const theirs = await doveadmMailboxStatus(d, 'alice', location, shown);
  const ours = await store.mailboxStatus(name);
  assert.ok(ours, `mailferry sees ${shown}`);
  assert.deepEqual(
    { messages: ours.messages, uidvalidity: ours.uidValidity, uidnext: ours.uidNext, guid: ours.guid },
    { messages: theirs.messages, uidvalidity: theirs.uidvalidity, uidnext: theirs.uidnext, guid: theirs.guid },
    `status of ${shown}`,
  );
  const fetched = await doveadmFetch(d, 'alice', location, shown);
  const { messages } = await store.getMessages(name);
  assert.deepEqual(
    messages.map((m) => ({ uid: m.uid, guid: m.guid, flags: [...m.flags, ...m.keywords].sort(), size: m.size })),
    fetched.map((m) => ({ uid: m.uid, guid: m.guid, flags: [...m.flags].sort(), size: m.size })),
    `messages of ${shown}`,
  );
}

describe('maildir interop with Dovecot', { timeout: 600_000 }, () => {
  let d: Dovecot;
  let scratch: string;
  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: false });
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-interop-'));
  });
  after(async () => {
    await d?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('reads a Maildir Dovecot wrote with the same UIDs, GUIDs, flags, keywords and mailbox GUIDs', async () => {
    const mail = corpusMessages(40);
    const folders = ['INBOX', 'Work.Q3', 'Sent Items', 'Entwürfe', 'A & B'];
    for (const f of folders.slice(1)) await d.doveadm(['mailbox', 'create', f], { user: 'alice' });
    for (let i = 0; i < mail.length; i++) {
      await d.doveadm(['save', '-m', folders[i % folders.length]!], { user: 'alice', input: mail[i]! });
    }
    await d.doveadm(['flags', 'add', '\\Seen $Label1 project-x', 'mailbox', 'INBOX', 'uid', '1:4'], { user: 'alice' });
    await d.doveadm(['flags', 'add', '\\Flagged \\Answered', 'mailbox', 'Work.Q3', 'uid', '2'], { user: 'alice' });
    await d.doveadm(['expunge', 'mailbox', 'INBOX', 'uid', '3'], { user: 'alice' });
    // Keep mailferry's index out of Dovecot's Maildir, which belongs to Dovecot's user.
    const location = `maildir:${join(d.home('alice'), 'Maildir')}:INDEX=${join(scratch, 'index-a')}`;
    const store = MaildirStore.open(parseMaildirLocation(location), { fsync: false, warn: (m) => assert.fail(`unexpected warning: ${m}`) });
    try {
      const names = (await store.listMailboxes()).mailboxes.map((m) => m.name.join('.')).sort();
      assert.deepEqual(names, [...folders].sort());
      for (const f of folders) await assertSameAsDoveadm(d, undefined, store, f.split('.'));
      const inbox = await store.getMessages(['INBOX']);
      const first = inbox.messages[0]!;
      assert.deepEqual([...first.keywords].sort(), ['$Label1', 'project-x']);
      assert.ok((await readAll(await store.openMessage(['INBOX'], first.uid))).equals(mail[0]!), 'body as delivered');
    } finally {
      await store.close();
    }
  });

  for (const layout of ['maildir++', 'fs'] as const) {
    it(`Dovecot reads a ${layout} Maildir mailferry wrote, with mailferry's UIDs, GUIDs, flags, keywords and names`, async () => {
      const root = join(scratch, `written-${layout}`, 'Maildir');
      const location = `maildir:${root}${layout === 'fs' ? ':LAYOUT=fs' : ''}`;
      const store = MaildirStore.open(parseMaildirLocation(location), { create: true, fsync: false, warn: () => {} });
      const folders = [['INBOX'], ['Sent Items'], ['Entwürfe'], ['A & B'], ['日本語'], ['Work', 'Q3', '2024'], ['Lists', 'dev']];
      const mail = corpusMessages(30);
      try {
        for (const f of folders.slice(1)) await store.createMailbox(f);
        await store.updateMailbox(['Lists', 'dev'], { minUidNext: 500 });
        for (let i = 0; i < mail.length; i++) {
          const folder = folders[i % folders.length]!;
          await store.saveMessages(folder, [
            req(mail[i]!, {
              uid: i % 4 === 0 ? 100 + i : undefined,
              guid: i % 3 === 0 ? `given-guid-${i}` : undefined,
              flags: i % 2 ? ['\\Seen'] : i % 5 === 0 ? ['\\Flagged', '\\Answered', '\\Draft'] : [],
              keywords: i % 3 === 1 ? ['$Label2', 'Important', `kw${i}`] : [],
              receivedDate: Date.UTC(2019, 5, 1) + i * 3_600_000,
            }),
          ]);
        }
        await store.updateFlags(['INBOX'], [{ uid: 100, flags: ['\\Seen', '\\Deleted'], keywords: ['late'] }]);
        await store.setSubscribed(['Sent Items'], true);
      } finally {
        await store.close();
      }
      await grantDovecotAccess(join(scratch, `written-${layout}`));
      const names = await doveadmMailboxList(d, 'alice', location);
      const sep = layout === 'fs' ? '/' : '.';
      assert.deepEqual(names, folders.map((f) => f.join(sep)).sort());
      const subscribed = await d.doveadm(['mailbox', 'list', '-s'], { user: 'alice', mailLocation: location });
      assert.match(subscribed, /^Sent Items$/m);
      const reader = MaildirStore.open(parseMaildirLocation(`${location}:INDEX=${join(scratch, `reader-${layout}`)}`), { fsync: false, warn: () => {} });
      try {
        for (const f of folders) await assertSameAsDoveadm(d, location, reader, f);
        const status = await doveadmMailboxStatus(d, 'alice', location, `Lists${sep}dev`);
        assert.ok(status.uidnext >= 500, 'a raised UIDNEXT is kept');
      } finally {
        await reader.close();
      }
    });
  }

  it('the SpamAssassin corpus round-trips byte for byte through 12 folders, and doveadm agrees', async () => {
    const mail = corpusMessages();
    assert.ok(mail.length >= 6000, `corpus has ${mail.length} messages`);
    const root = join(scratch, 'corpus', 'Maildir');
    const location = `maildir:${root}`;
    const folders = Array.from({ length: 12 }, (_, i) => (i === 0 ? ['INBOX'] : [`Folder ${i}`, i % 2 ? 'sub' : 'Ünïcode']));
    const store = MaildirStore.open(parseMaildirLocation(location), { create: true, fsync: false, warn: () => {} });
    const expected = new Map<string, Buffer>();
    try {
      for (const f of folders.slice(1)) await store.createMailbox(f);
      for (let fi = 0; fi < folders.length; fi++) {
        const mine = mail.filter((_, i) => i % folders.length === fi);
        const saved = await store.saveMessages(
          folders[fi]!,
          mine.map((m, i) => req(m, { flags: i % 2 ? ['\\Seen'] : [], keywords: i % 7 === 0 ? ['$Junk'] : [] })),
        );
        saved.forEach((s, i) => expected.set(`${fi}/${s.uid}`, mine[i]!));
      }
      let checked = 0;
      for (let fi = 0; fi < folders.length; fi++) {
        for (const m of (await store.getMessages(folders[fi]!)).messages) {
          const back = await readAll(await store.openMessage(folders[fi]!, m.uid));
          assert.ok(back.equals(expected.get(`${fi}/${m.uid}`)!), `folder ${fi} uid ${m.uid} is byte-identical`);
          checked++;
        }
      }
      assert.equal(checked, mail.length);
    } finally {
      await store.close();
    }
    await grantDovecotAccess(join(scratch, 'corpus'));
    let total = 0;
    for (let fi = 0; fi < folders.length; fi++) {
      const fetched = await doveadmFetch(d, 'alice', location, folders[fi]!.join('.'));
      for (const m of fetched) {
        assert.equal(m.size, expected.get(`${fi}/${m.uid}`)?.length, `doveadm size of folder ${fi} uid ${m.uid}`);
      }
      total += fetched.length;
    }
    assert.equal(total, mail.length);
  });
});
