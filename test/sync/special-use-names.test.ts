/**
 * Special-use folders named differently on the two sides ("Sent Items" here, "Sent" there, both
 * \Sent) are one folder: a backup or sync fills the destination's own Sent folder instead of
 * creating a second one, and a second run finds nothing to do.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailboxStatus, MailStore } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { NameTranslation, specialUsePairs, translatedFilter } from '../../src/sync/special-use-names.js';
import { runSync } from '../../src/sync/sync.js';
import { message, readAll, req } from '../contract/store-contract.js';

function box(name: string[], specialUse: string[] = []): MailboxStatus {
  return { name, guid: name.join('/'), uidValidity: 1, uidNext: 1, highestModseq: 1, messages: 0, specialUse, subscribed: false };
}

describe('special-use pairs (pure)', () => {
  it('pairs each role held once on both sides under different names', () => {
    const a = [box(['INBOX']), box(['Sent Items'], ['\\Sent']), box(['Deleted Items'], ['\\Trash']), box(['Drafts'], ['\\Drafts'])];
    const b = [box(['INBOX']), box(['Sent'], ['\\Sent']), box(['Trash'], ['\\Trash']), box(['Drafts'], ['\\Drafts'])];
    assert.deepEqual(specialUsePairs(a, b), [
      { own: ['Sent Items'], shown: ['Sent'] },
      { own: ['Deleted Items'], shown: ['Trash'] },
    ]);
  });

  it('leaves names alone where either side already has the other name, or a role is held twice', () => {
    assert.deepEqual(specialUsePairs([box(['Sent Items'], ['\\Sent']), box(['Sent'])], [box(['Sent'], ['\\Sent'])]), []);
    assert.deepEqual(specialUsePairs([box(['Sent Items'], ['\\Sent'])], [box(['Sent'], ['\\Sent']), box(['Sent Items'])]), []);
    assert.deepEqual(specialUsePairs([box(['Sent Items'], ['\\Sent']), box(['Old Sent'], ['\\Sent'])], [box(['Sent'], ['\\Sent'])]), []);
    assert.deepEqual(specialUsePairs([box(['Junk'], ['\\Junk'])], [box(['INBOX'], ['\\Junk'])]), []);
  });

  it('translates children both ways, and a filter picks a pair by either name', () => {
    const t = new NameTranslation([{ own: ['Sent Items'], shown: ['Sent'] }]);
    assert.deepEqual(t.shown(['Sent Items', '2023']), ['Sent', '2023']);
    assert.deepEqual(t.own(['Sent', '2023']), ['Sent Items', '2023']);
    assert.deepEqual(t.shown(['Work']), ['Work']);
    const only = translatedFilter((m) => m.name[0] === 'Sent Items', t);
    assert.equal(only(box(['Sent'])), true);
    assert.equal(only(box(['Work'])), false);
  });
});

/** A Maildir standing in for a server that owns its folder names (an IMAP server does). */
function serverLike(store: MaildirStore): MailStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'ownsSpecialUseNames') return true;
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as MailStore;
}

describe('special-use folders with different names, end to end', () => {
  const open = (dir: string, p: string) => MaildirStore.open(parseMaildirLocation(`maildir:${join(dir, p)}`), { create: true, fsync: false, warn: () => {} });

  async function subjects(s: MaildirStore, name: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const m of (await s.getMessages(name)).messages) out.push(/^Subject: (.*)$/m.exec((await readAll(await s.openMessage(name, m.uid))).toString())![1]!);
    return out.sort();
  }
  const names = async (s: MaildirStore) => (await s.listMailboxes()).mailboxes.map((m) => m.name.join('/')).sort();

  it('backup fills the destination Sent folder (children too) and creates no second one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-special-use-'));
    const [src, dst] = [open(dir, 'src'), open(dir, 'dst')];
    try {
      await src.createMailbox(['Sent Items'], { specialUse: ['\\Sent'] });
      await src.createMailbox(['Sent Items', '2023']);
      await src.saveMessages(['Sent Items'], [req(message('sent-1')), req(message('sent-2'))]);
      await src.saveMessages(['Sent Items', '2023'], [req(message('old-sent'))]);
      await dst.createMailbox(['Sent'], { specialUse: ['\\Sent'] });

      const first = await runBackup(src, serverLike(dst));
      assert.equal(first.saved, 3);
      assert.deepEqual(await names(dst), ['INBOX', 'Sent', 'Sent/2023']);
      assert.deepEqual(await subjects(dst, ['Sent']), ['sent-1', 'sent-2']);
      assert.deepEqual(await subjects(dst, ['Sent', '2023']), ['old-sent']);
      assert.deepEqual(await names(src), ['INBOX', 'Sent Items', 'Sent Items/2023'], 'the source keeps its names');

      const again = await runBackup(src, serverLike(dst), { full: true });
      assert.deepEqual([again.treeActions, again.saved, again.expunged, again.flagUpdates], [0, 0, 0, 0]);
    } finally {
      await src.close();
      await dst.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('two-way sync merges the two Sent folders under their own names', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-special-use-'));
    const [a, b] = [open(dir, 'a'), open(dir, 'b')];
    try {
      await a.createMailbox(['Sent Items'], { specialUse: ['\\Sent'] });
      await a.saveMessages(['Sent Items'], [req(message('from-a'))]);
      await b.createMailbox(['Sent'], { specialUse: ['\\Sent'] });
      await b.saveMessages(['Sent'], [req(message('from-b'))]);

      await runSync(a, serverLike(b));
      assert.deepEqual(await names(a), ['INBOX', 'Sent Items']);
      assert.deepEqual(await names(b), ['INBOX', 'Sent']);
      assert.deepEqual(await subjects(a, ['Sent Items']), ['from-a', 'from-b']);
      assert.deepEqual(await subjects(b, ['Sent']), ['from-a', 'from-b']);

      const again = await runSync(a, serverLike(b), { full: true });
      assert.deepEqual([again.treeActions, again.saved, again.expunged, again.flagUpdates], [0, 0, 0, 0]);
    } finally {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('between two Maildirs a backup keeps names exactly: the destination gets "Sent Items", not its "Sent"', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-special-use-'));
    const [src, dst] = [open(dir, 'src'), open(dir, 'dst')];
    try {
      await src.createMailbox(['Sent Items'], { specialUse: ['\\Sent'] });
      await src.saveMessages(['Sent Items'], [req(message('sent-1'))]);
      await dst.createMailbox(['Sent'], { specialUse: ['\\Sent'] });
      await runBackup(src, dst);
      assert.deepEqual(await names(dst), ['INBOX', 'Sent Items']);
      assert.deepEqual(await subjects(dst, ['Sent Items']), ['sent-1']);
    } finally {
      await src.close();
      await dst.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
