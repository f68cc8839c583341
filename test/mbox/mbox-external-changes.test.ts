/**
 * Changes other programs make to an mbox between runs (a delivery agent appending, a mail
 * client rewriting Status, another program deleting a message) are seen as changes with
 * modseqs, and expunges carry the GUID the message had.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { message, readAll, req } from '../contract/store-contract.js';

/** Makes the next read scan the file: an mtime two seconds old proves nothing changed, a fresh one does not. */
function touchPast(path: string, secondsAgo = 10): void {
  const t = Date.now() / 1000 - secondsAgo;
  utimesSync(path, t, t);
}

describe('mbox: changes made by other programs', () => {
  let dir: string;
  let loc: MboxLocation;
  let inbox: string;
  const open = () => MboxStore.open(loc, { create: true, fsync: false, warn: () => {} });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-ext-'));
    loc = parseLocation(`mbox:${join(dir, 'mail')}`) as MboxLocation;
    inbox = join(dir, 'mail', 'inbox');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('a delivery appended by a delivery agent gets the next UID, keeps it, and gets its X-UID on the next write', async () => {
    let s = open();
    const [first] = await s.saveMessages(['INBOX'], [req(message('one'), { flags: ['\\Seen'] })]);
    const before = await s.getMessages(['INBOX']);
    await s.close();
    // Postfix local delivery: From line, the message, an empty line; ">From " quoting in the body,
    // served as stored (as Dovecot serves it).
    appendFileSync(inbox, 'From postfix@example.org  Tue Jan  2 08:00:00 2024\nFrom: x@example.org\nMessage-ID: <delivered@x>\nSubject: delivered\n\nhello\n>From the body\n\n');
    touchPast(inbox);
    s = open();
    const after = await s.getMessages(['INBOX'], before.highestModseq);
    assert.deepEqual(after.messages.map((m) => m.uid), [first!.uid + 1]);
    const delivered = after.messages[0]!;
    assert.equal(delivered.receivedDate, new Date(2024, 0, 2, 8, 0, 0).getTime());
    const body = await readAll(await s.openMessage(['INBOX'], delivered.uid));
    assert.equal(body.toString(), 'From: x@example.org\nMessage-ID: <delivered@x>\nSubject: delivered\n\nhello\n>From the body\n');
    assert.equal(delivered.size, body.length);
    // The next write numbers it in the file, with the UID already handed out.
    await s.saveMessages(['INBOX'], [req(message('three'))]);
    assert.match(readFileSync(inbox, 'latin1'), new RegExp(`Subject: delivered\\n(?:.*\\n)*?X-UID: ${delivered.uid}\\n`));
    const all = await s.getMessages(['INBOX']);
    assert.deepEqual(all.messages.map((m) => m.uid), [1, 2, 3]);
    assert.equal(all.messages[1]!.guid, delivered.guid, 'the rewrite keeps its GUID');
    assert.deepEqual(await readAll(await s.openMessage(['INBOX'], delivered.uid)), body, 'and its bytes');
    await s.close();
  });

  it('two deliveries in a row keep the UIDs the first scan gave them', async () => {
    let s = open();
    await s.saveMessages(['INBOX'], [req(message('one'))]);
    await s.close();
    appendFileSync(inbox, 'From a@b  Tue Jan  2 08:00:00 2024\nMessage-ID: <d1@x>\n\none\n\n');
    touchPast(inbox);
    s = open();
    const one = (await s.getMessages(['INBOX'])).messages;
    await s.close();
    appendFileSync(inbox, 'From a@b  Tue Jan  2 09:00:00 2024\nMessage-ID: <d2@x>\n\ntwo\n\n');
    touchPast(inbox, 5);
    s = open();
    const two = (await s.getMessages(['INBOX'])).messages;
    assert.deepEqual(two.slice(0, 2), one);
    assert.equal(two[2]!.uid, 3);
    await s.close();
  });

  it('a delivery right after our own save, mtime still fresh, is seen by the same store', async () => {
    const s = open();
    await s.saveMessages(['INBOX'], [req(message('one')), req(message('two'))]);
    // The store recorded the file it wrote; a status read now trusts that record...
    assert.equal((await s.mailboxStatus(['INBOX']))!.messages, 2);
    // ...only while the file is the one it recorded.
    appendFileSync(inbox, 'From a@b  Tue Jan  2 08:00:00 2024\nMessage-ID: <d1@x>\n\none\n\n');
    assert.equal((await s.mailboxStatus(['INBOX']))!.messages, 3);
    assert.deepEqual((await s.getMessages(['INBOX'])).messages.map((m) => m.uid), [1, 2, 3]);
    await s.close();
  });

  it('a flag change by rewriting Status/X-Status is a change with a new modseq', async () => {
    let s = open();
    const saved = await s.saveMessages(['INBOX'], [req(message('a')), req(message('b'))]);
    const before = await s.getMessages(['INBOX']);
    await s.close();
    const text = readFileSync(inbox, 'latin1');
    const at = text.indexOf('Subject: b');
    writeFileSync(inbox, text.slice(0, at) + text.slice(at).replace('Status: O\n', 'Status: RO\nX-Status: F\n'), 'latin1');
    touchPast(inbox);
    s = open();
    const after = await s.getMessages(['INBOX'], before.highestModseq);
    assert.deepEqual(after.messages.map((m) => [m.uid, m.flags]), [[saved[1]!.uid, ['\\Flagged', '\\Seen']]]);
    assert.ok(after.messages[0]!.modseq > before.highestModseq);
    await s.close();
  });

  it('a message deleted by another program is an expunge with its GUID; the others keep their UIDs', async () => {
    let s = open();
    const saved = await s.saveMessages(['INBOX'], [req(message('a')), req(message('b'), { guid: 'kept-guid-b' }), req(message('c'))]);
    const before = await s.getMessages(['INBOX']);
    await s.close();
    const text = readFileSync(inbox, 'latin1');
    const start = text.lastIndexOf('\nFrom ', text.indexOf('Subject: b')) + 1;
    const end = text.indexOf('\nFrom ', text.indexOf('Subject: b')) + 1;
    writeFileSync(inbox, text.slice(0, start) + text.slice(end), 'latin1');
    touchPast(inbox);
    s = open();
    const after = await s.getMessages(['INBOX'], before.highestModseq);
    assert.deepEqual(after.expunged.map((e) => [e.uid, e.guid]), [[saved[1]!.uid, 'kept-guid-b']]);
    assert.deepEqual((await s.getMessages(['INBOX'])).messages.map((m) => m.uid), [saved[0]!.uid, saved[2]!.uid]);
    await s.close();
  });

  it('a replaced message under the same X-UID is an expunge of the old GUID and a new message', async () => {
    let s = open();
    const [a] = await s.saveMessages(['INBOX'], [req(message('a'))]);
    await s.close();
    writeFileSync(inbox, readFileSync(inbox, 'latin1').replace('Message-ID: <a@example.org>', 'Message-ID: <other@example.org>'), 'latin1');
    touchPast(inbox);
    s = open();
    const all = await s.getMessages(['INBOX']);
    assert.deepEqual(all.expunged.map((e) => e.guid), [a!.guid]);
    assert.equal(all.messages.length, 1);
    assert.notEqual(all.messages[0]!.guid, a!.guid);
    await s.close();
  });

  it('mbox files made by other programs appear as new mailboxes; removed ones as deletes', async () => {
    let s = open();
    await s.listMailboxes();
    await s.close();
    writeFileSync(join(dir, 'mail', 'Archive'), 'From a@b Tue Jan  2 08:00:00 2024\nSubject: x\n\ny\n');
    s = open();
    let list = await s.listMailboxes();
    const archive = list.mailboxes.find((m) => m.name.join('/') === 'Archive');
    assert.equal(archive?.messages, 1);
    assert.ok(list.changes.some((c) => c.type === 'create' && c.guid === archive!.guid));
    await s.close();
    await rm(join(dir, 'mail', 'Archive'));
    s = open();
    list = await s.listMailboxes();
    assert.ok(list.changes.some((c) => c.type === 'delete' && c.guid === archive!.guid));
    await s.close();
  });

  it('a file renamed by another program is a rename, with its GUID and messages', async () => {
    let s = open();
    const st = await s.createMailbox(['Drafts']);
    await s.saveMessages(['Drafts'], [req(message('d'))]);
    await s.listMailboxes();
    await s.close();
    renameSync(join(dir, 'mail', 'Drafts'), join(dir, 'mail', 'Entw&APw-rfe'));
    s = open();
    const list = await s.listMailboxes();
    const moved = list.mailboxes.find((m) => m.name.join('/') === 'Entwürfe');
    assert.equal(moved?.guid, st.guid);
    assert.equal(moved?.messages, 1);
    assert.ok(list.changes.some((c) => c.type === 'rename' && c.guid === st.guid && c.oldName.join('/') === 'Drafts'));
    assert.ok(!list.changes.some((c) => c.type === 'delete' && c.guid === st.guid));
    await s.close();
  });
});
