/**
 * A mailbox this session saved to stays selected, and the session's view of it is as old as
 * its SELECT: the look after a save lists what changed, and the next look, with nothing
 * changed, lists nothing (it listed the whole mailbox again before). What another client
 * changes afterwards is still seen.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { parseImapLocation } from '../../src/config/imap-location.js';
import { fastFetched } from '../../src/storage/imap/fast-fetch.js';
import type { ImapContext } from '../../src/storage/imap/imap-context.js';
import { ImapStore } from '../../src/storage/imap/imap-store.js';
import { message, req } from '../contract/store-contract.js';
import { startDovecot, type Dovecot } from '../support/dovecot.js';

let d: Dovecot;
let dir: string;
before(async () => {
  d = await startDovecot({ users: ['a'], imap: true });
  dir = await mkdtemp(join(tmpdir(), 'mailferry-refresh-after-save-'));
});
after(async () => {
  await d?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('after a save, a look that finds nothing changed lists nothing; a change by another client is still seen', async () => {
  const passwordFile = join(dir, 'a.pw');
  await writeFile(passwordFile, `${d.users.a}\n`);
  const s = await ImapStore.open(parseImapLocation(`imap://a@127.0.0.1:${d.port}/?tls=none&state=${join(dir, 'state')}`), { passwordFile, warn: () => {} });
  try {
    const ctx = (s as unknown as { ctx: ImapContext }).ctx;
    const client = await ctx.session.run('', async (c) => c);
    await s.getMessages(['INBOX']);
    const saved = await s.saveMessages(['INBOX'], Array.from({ length: 30 }, (_, i) => req(message(`m${i}`))));
    const first = await s.getMessages(['INBOX']);
    assert.equal(first.messages.length, 30);
    const before = fastFetched(client);
    const again = await s.getMessages(['INBOX']);
    assert.equal(fastFetched(client) - before, 0, 'nothing listed when nothing changed');
    assert.deepEqual(again.messages.map((m) => [m.uid, m.guid, m.modseq]), first.messages.map((m) => [m.uid, m.guid, m.modseq]));

    const other = new ImapFlow({ host: '127.0.0.1', port: d.port, secure: false, doSTARTTLS: false, auth: { user: 'a', pass: d.users.a! }, logger: false });
    await other.connect();
    await other.mailboxOpen('INBOX');
    const serverUid = (await other.search({ all: true }, { uid: true })) as number[];
    await other.messageFlagsAdd(String(serverUid[7]), ['\\Flagged'], { uid: true });
    await other.logout();
    const changed = await s.getMessages(['INBOX'], first.highestModseq);
    assert.deepEqual(changed.messages.map((m) => [m.uid, m.flags]), [[saved[7]!.uid, ['\\Flagged']]]);
  } finally {
    await s.close();
  }
});
