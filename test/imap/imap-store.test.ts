/**
 * ImapStore against Dovecot beyond the shared contract: what other clients do to the account
 * between runs, large and refused messages, the pending-append journal, X-GUID.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { parseImapLocation } from '../../src/config/imap-location.js';
import { headerBlockOf, headerHash } from '../../src/model/header-hash.js';
import { ImapStore } from '../../src/storage/imap/imap-store.js';
import { lfToCrlf } from '../../src/storage/imap/line-ends.js';
import { PendingAppends } from '../../src/storage/imap/pending-appends.js';
import { message, readAll, req } from '../contract/store-contract.js';
import { doveadmFetch, startDovecot, type Dovecot } from '../support/dovecot.js';

describe('ImapStore (Dovecot)', { timeout: 60_000 }, () => {
  let d: Dovecot;
  let dir: string;
  const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7'];
  const warnings: string[] = [];
  const state = (user: string) => join(dir, `state-${user}`);
  const open = async (user: string) => {
    const passwordFile = join(dir, `${user}.pw`);
    await writeFile(passwordFile, `${d.users[user]}\n`);
    return ImapStore.open(parseImapLocation(`imap://${user}@127.0.0.1:${d.port}/?tls=none&state=${state(user)}`), { passwordFile, warn: (m) => warnings.push(m) });
  };
  const other = async (user: string, fn: (c: ImapFlow) => Promise<void>) => {
    const c = new ImapFlow({ host: '127.0.0.1', port: d.port, secure: false, doSTARTTLS: false, auth: { user, pass: d.users[user]! }, logger: false });
    await c.connect();
    try {
      await fn(c);
    } finally {
      await c.logout();
    }
  };
  before(async () => {
    d = await startDovecot({ users, imap: true });
    dir = await mkdtemp(join(tmpdir(), 'mailferry-imap-store-'));
  });
  after(async () => {
    await d?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('sees what other clients do: new mail, flag changes and expunges (with GUIDs) as new modseqs', async () => {
    const s = await open('u1');
    try {
      const saved = await s.saveMessages(['INBOX'], [req(message('a')), req(message('b')), req(message('c'))]);
      const before = await s.getMessages(['INBOX']);
      const idle = await s.getMessages(['INBOX'], before.highestModseq);
      assert.deepEqual([idle.messages, idle.expunged, idle.incremental], [[], [], true]);
      await other('u1', async (c) => {
        await c.mailboxOpen('INBOX');
        await c.messageFlagsAdd(String(saved[0]!.uid), ['\\Seen', 'Later'], { uid: true });
        await c.messageDelete(String(saved[1]!.uid), { uid: true });
        await c.append('INBOX', lfToCrlf(message('d')), ['\\Flagged']);
      });
      const after = await s.getMessages(['INBOX'], before.highestModseq);
      assert.equal(after.incremental, true);
      assert.deepEqual(after.expunged.map((e) => [e.uid, e.guid]), [[saved[1]!.uid, saved[1]!.guid]]);
      assert.deepEqual(after.messages.map((m) => [m.flags, m.keywords]), [[['\\Seen'], ['Later']], [['\\Flagged'], []]]);
      assert.ok(after.messages.every((m) => m.modseq > before.highestModseq));
      assert.ok(after.highestModseq > before.highestModseq);
      // X-GUID: Dovecot's own message GUID, the one doveadm shows.
      assert.equal(s.nativeGuids, true);
      const server = await doveadmFetch(d, 'u1', undefined, 'INBOX');
      assert.equal(after.messages[1]!.guid, server.at(-1)!.guid);
    } finally {
      await s.close();
    }
  });

  it('a 12 MB message round-trips; a message the server refuses is reported and the rest saved', async () => {
    const s = await open('u2');
    try {
      const large = Buffer.alloc(12 * 1024 * 1024, 'line of text\n');
      const body = Buffer.concat([message('large'), large]);
      warnings.length = 0;
      const saved = await s.saveMessages(['INBOX'], [req(message('one')), req(Buffer.alloc(0)), req(body), req(message('two'))]);
      assert.equal(saved.length, 3, 'the empty message is left out');
      assert.ok(warnings.some((w) => /refused message/.test(w)), warnings.join('\n'));
      const back = await readAll(await s.openMessage(['INBOX'], saved[1]!.uid));
      assert.ok(back.equals(body));
      const meta = (await s.getMessages(['INBOX'])).messages.find((m) => m.uid === saved[1]!.uid)!;
      assert.equal(meta.size, body.length);
    } finally {
      await s.close();
    }
  });

  it('a save the server stored before the connection dropped is recognised, not duplicated', async () => {
    const s = await open('u3');
    const body = message('journalled');
    const guid = '0123456789abcdef0123456789abcdef';
    try {
      const box = await s.mailboxStatus(['INBOX']);
      const wire = lfToCrlf(body);
      // As if APPEND had been sent and the process died before recording the UID.
      const journal = new PendingAppends(state('u3'));
      journal.set(box!.guid, [{ hash: headerHash(headerBlockOf(wire)), wireSize: wire.length, size: body.length, guid, uid: 40, flags: ['\\Seen'], keywords: [], receivedDate: Date.UTC(2020, 0, 1) }]);
      await other('u3', (c) => c.append('INBOX', wire, ['\\Seen'], new Date(Date.UTC(2020, 0, 1))).then(() => {}));
    } finally {
      await s.close();
    }
    const again = await open('u3');
    try {
      const { messages } = await again.getMessages(['INBOX']);
      assert.deepEqual(messages.map((m) => [m.uid, m.guid]), [[40, guid]]);
      assert.deepEqual(new PendingAppends(state('u3')).of((await again.mailboxStatus(['INBOX']))!.guid), []);
    } finally {
      await again.close();
    }
  });

  it('a journalled save that never reached the server is forgotten at the next look', async () => {
    const first = await open('u5');
    const box = await first.mailboxStatus(['INBOX']);
    await first.close();
    new PendingAppends(state('u5')).set(box!.guid, [{ hash: 'ff'.repeat(16), wireSize: 10, size: 9, guid: '', uid: 7, flags: [], keywords: [], receivedDate: 0 }]);
    const s = await open('u5');
    try {
      await s.saveMessages(['INBOX'], [req(message('later'))]);
      assert.deepEqual(new PendingAppends(state('u5')).of(box!.guid), []);
      assert.equal((await s.getMessages(['INBOX'])).messages.length, 1);
    } finally {
      await s.close();
    }
  });

  it('what the X-GUID probe found is remembered with the server identity, and probed again when that changes', async () => {
    await (await open('u7')).close();
    const file = join(state('u7'), 'server-features.json');
    const saved = JSON.parse(await readFile(file, 'utf8')) as { identity: string; xGuid: boolean };
    assert.equal(saved.xGuid, true);
    // Believed without asking the server again.
    await writeFile(file, JSON.stringify({ ...saved, xGuid: false }));
    let s = await open('u7');
    assert.equal(s.nativeGuids, false);
    await s.close();
    // Another server (or this one changed): probed, and the answer remembered.
    await writeFile(file, JSON.stringify({ identity: 'another server', xGuid: false }));
    s = await open('u7');
    assert.equal(s.nativeGuids, true);
    await s.close();
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), saved);
  });

  it('a mailbox deleted by another client is a not-found error naming it', async () => {
    const s = await open('u4');
    try {
      await s.createMailbox(['Doomed']);
      await other('u4', (c) => c.mailboxDelete('Doomed').then(() => {}));
      await assert.rejects(s.getMessages(['Doomed']), (e: unknown) => (e as { kind?: string }).kind === 'notfound' && /Doomed/.test(String(e)));
      const list = await s.listMailboxes();
      assert.ok(list.changes.some((c) => c.type === 'delete' && c.name[0] === 'Doomed'));
    } finally {
      await s.close();
    }
  });
});
