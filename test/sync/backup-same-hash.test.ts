/**
 * A Maildir destination holding the source's messages at the source's UIDs but under other
 * GUIDs (copied there by another program, or its uidlist rebuilt) with the same Date and
 * Message-ID: a backup keeps them, warns once for the mailbox, and rebuilds nothing. Only a UID
 * holding a message with other headers is a clash worth a rebuild.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runBackup, type BackupEvent } from '../../src/sync/backup.js';
import { message, req } from '../contract/store-contract.js';

const INBOX = ['INBOX'];
const SUBJECTS = ['one', 'two', 'three', 'four', 'five'];

let dir: string;
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailferry-same-hash-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const open = (name: string) => MaildirStore.open(parseMaildirLocation(`maildir:${join(dir, name)}`), { create: true, fsync: false, warn: () => {} });

/** A source, and a destination holding the same mail at the same UIDs under GUIDs of its own. */
async function pair(destBody: (subject: string) => Buffer = (s) => message(s)): Promise<[MaildirStore, MaildirStore]> {
  const id = ++n;
  const source = open(`src-${id}`);
  const dest = open(`dest-${id}`);
  await source.saveMessages(INBOX, SUBJECTS.map((s, i) => req(message(s), { flags: i === 0 ? ['\\Seen'] : [] })));
  const status = (await source.listMailboxes()).mailboxes.find((m) => m.name[0] === 'INBOX')!;
  await dest.createMailbox(INBOX).catch(() => {});
  await dest.updateMailbox(INBOX, { uidValidity: status.uidValidity, guid: status.guid, restartUids: true });
  await dest.saveMessages(INBOX, SUBJECTS.map((s, i) => req(destBody(s), { uid: i + 1, guid: `other-${id}-${i}` })));
  const [src, dst] = [await source.getMessages(INBOX), await dest.getMessages(INBOX)];
  assert.deepEqual(dst.messages.map((m) => m.uid), src.messages.map((m) => m.uid), 'same UIDs');
  assert.notDeepEqual(dst.messages.map((m) => m.guid), src.messages.map((m) => m.guid), 'other GUIDs');
  return [source, dest];
}

function warningsOf(events: BackupEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'warning' ? [e.message] : []));
}

describe('backup to a Maildir whose messages carry other GUIDs', () => {
  it('keeps the messages at their UIDs: no rebuild, no copy, no expunge, one warning; the next full backup is in sync', async () => {
    const [source, dest] = await pair();
    try {
      const events: BackupEvent[] = [];
      const r = await runBackup(source, dest, { onEvent: (e) => events.push(e) });
      assert.deepEqual([r.rebuilt, r.saved, r.expunged, r.flagUpdates, r.changedDuringSync], [0, 0, 0, 1, false], JSON.stringify(events));
      assert.equal(warningsOf(events).length, 1, 'one warning for the mailbox');
      assert.match(warningsOf(events)[0]!, /INBOX: 5 message/);
      assert.equal((await dest.getMessages(INBOX)).messages.length, 5);
      const again = await runBackup(source, dest, { full: true });
      assert.deepEqual([again.rebuilt, again.saved, again.expunged, again.flagUpdates, again.changedDuringSync], [0, 0, 0, 0, false]);
    } finally {
      await source.close();
      await dest.close();
    }
  });

  it('a UID holding a message with another Message-ID is still a clash: the mailbox is rebuilt', async () => {
    const [source, dest] = await pair((s) => message(s === 'three' ? 'something else' : s));
    try {
      const r = await runBackup(source, dest);
      assert.equal(r.rebuilt, 1);
      const got = (await dest.getMessages(INBOX)).messages;
      assert.deepEqual(got.map((m) => m.guid), (await source.getMessages(INBOX)).messages.map((m) => m.guid));
    } finally {
      await source.close();
      await dest.close();
    }
  });
});
