/**
 * getMessagesOf answers what a whole listing filtered by UID and GUID answers, from a fresh
 * store (SQLite picks the rows) and from one that already holds the mailbox's rows, for a GUID
 * held twice and for UIDs and GUIDs that name nothing.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { it } from 'node:test';
import { ChangeIndex } from '../../src/storage/index/change-index.js';
import type { MailboxName, MailStore } from '../../src/storage/store.js';
import { message, readAll, req } from '../contract/store-contract.js';
import { openMaildir, tempRoots } from './maildir-pair.js';

const BOX: MailboxName = ['Ünï côde'];

it('getMessagesOf is a whole listing filtered by UID and GUID, with or without the rows at hand', async () => {
  const roots = await tempRoots('messages-of');
  try {
    let s: MailStore = openMaildir(roots.a);
    await s.createMailbox(BOX);
    await s.saveMessages(BOX, Array.from({ length: 30 }, (_, i) => req(message(`m${i}`), { flags: i % 2 ? ['\\Seen'] : [], keywords: i % 5 ? [] : ['work'] })));
    const all = (await s.getMessages(BOX)).messages;
    // A second copy of one message under its GUID, as an interrupted renumbering leaves it.
    const twice = all[7]!;
    await s.saveMessages(BOX, [req(await readAll(await s.openMessage(BOX, twice.uid)), { guid: twice.guid })]);
    await s.close();

    const uids = new Set([all[0]!.uid, all[12]!.uid, 9999]);
    const guids = new Set([twice.guid, all[20]!.guid, 'no-such-guid']);
    s = openMaildir(roots.a);
    const fresh = await s.getMessagesOf!(BOX, { uids, guids });
    const whole = await s.getMessages(BOX);
    const expected = whole.messages.filter((m) => uids.has(m.uid) || guids.has(m.guid));
    assert.ok(expected.length >= 4, `the filter finds the asked-for messages (${expected.length})`);
    assert.deepEqual(fresh.messages, expected);
    assert.deepEqual({ v: fresh.uidValidity, n: fresh.uidNext, h: fresh.highestModseq }, { v: whole.uidValidity, n: whole.uidNext, h: whole.highestModseq });
    const kept = await s.getMessagesOf!(BOX, { uids, guids });
    assert.deepEqual(kept.messages, expected);
    assert.deepEqual((await s.getMessagesOf!(BOX, { uids: new Set(), guids: new Set() })).messages, []);
    await s.close();
  } finally {
    await rm(roots.dir, { recursive: true, force: true });
  }
});

it("the change index's messagesOf picks the same rows through SQLite as from the rows it keeps", async () => {
  const roots = await tempRoots('messages-of-index');
  const index = ChangeIndex.open(roots.a);
  try {
    const box = index.addMailbox('0123456789abcdef0123456789abcdef', ['INBOX'], 1);
    const guid = (i: number) => (i === 4 || i === 9 ? 'held-twice' : `g${i % 8}`);
    index.applyChanges(box.id, Array.from({ length: 12 }, (_, i) => ({ kind: 'add' as const, message: { uid: i + 1, guid: guid(i), file: `cur/f${i}:2,`, flagLetters: '', keywords: [], receivedDate: 0, size: 10 } })));
    const uids = new Set([2, 11, 500]);
    const guids = new Set(['held-twice', 'g6', 'nothing']);
    // Another connection's commit makes the kept rows stale, so this one asks SQLite.
    const other = ChangeIndex.open(roots.a);
    other.applyChanges(box.id, [{ kind: 'expunge', uid: 3, guid: 'g2' }]);
    other.close();
    const picked = index.messagesOf(box.id, uids, guids);
    const expected = index.messages(box.id).filter((m) => uids.has(m.uid) || guids.has(m.guid));
    assert.deepEqual(picked.map((m) => m.uid), [2, 5, 7, 10, 11]);
    assert.deepEqual(picked, expected);
    assert.deepEqual(index.messagesOf(box.id, uids, guids), expected, 'and the same from the rows now kept');
  } finally {
    index.close();
    await rm(roots.dir, { recursive: true, force: true });
  }
});
