/**
 * The bulk FETCHes against Dovecot go through fetch-line.ts (fast-fetch.ts), not imapflow's
 * parser, and read what Dovecot holds: metadata with X-GUID, header fields and whole bodies.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { fastFetched } from '../../src/storage/imap/fast-fetch.js';
import { appendBatch } from '../../src/storage/imap/imap-append.js';
import { fetchBodies, fetchMeta } from '../../src/storage/imap/imap-fetch.js';
import { doveadmFetch, startDovecot, type Dovecot } from '../support/dovecot.js';

describe('bulk FETCH decoding (Dovecot)', { timeout: 60_000 }, () => {
  let d: Dovecot;
  before(async () => {
    d = await startDovecot({ users: ['a'], imap: true });
  });
  after(async () => d?.stop());

  it('metadata, header fields and bodies of every message, each answer decoded without imapflow\'s parser', async () => {
    const c = new ImapFlow({ host: '127.0.0.1', port: d.port, secure: false, doSTARTTLS: false, auth: { user: 'a', pass: d.users.a! }, logger: false });
    await c.connect();
    try {
      const sent = Array.from({ length: 40 }, (_, i) =>
        Buffer.from(`Date: Tue, 1 Jan 2019 00:00:${String(i % 60).padStart(2, '0')} +0000\r\nMessage-ID: <m${i}@fast>\r\nSubject: (${i}) {3}\r\n\r\n${'body line\r\n'.repeat(i * 50)}* ${i} FETCH (UID ${i})\r\n`),
      );
      const uids = await appendBatch(c, 'INBOX', sent.map((wire, i) => ({ wire, flags: i % 3 ? ['\\Seen', `kw${i}`] : [], receivedDate: Date.UTC(2019, 0, 1 + i) })));
      await c.mailboxOpen('INBOX');
      const before = fastFetched(c);
      const meta = await fetchMeta(c, '1:*', { xGuid: true, headers: true, condstore: true });
      assert.equal(fastFetched(c) - before, sent.length, 'every metadata answer decoded here');
      const guids = (await doveadmFetch(d, 'a', undefined, 'INBOX')).map((m) => m.guid);
      assert.deepEqual(meta.messages.map((m) => m.uid), uids);
      assert.deepEqual(meta.messages.map((m) => m.xGuid), guids);
      assert.deepEqual(meta.messages.map((m) => m.size), sent.map((b) => b.length));
      assert.deepEqual(meta.messages.map((m) => m.internalDate), sent.map((_, i) => Date.UTC(2019, 0, 1 + i)));
      assert.deepEqual(meta.messages.map((m) => [...m.flags].sort()), sent.map((_, i) => (i % 3 ? ['\\Seen', `kw${i}`] : [])));
      assert.ok(meta.messages.every((m, i) => m.header!.toString().includes(`<m${i}@fast>`) && !m.header!.toString().includes('Subject')));

      // What the index holds for mail it found: the server's RFC822.SIZE.
      const sizes = new Map(meta.messages.map((m) => [m.uid, m.size]));
      const mid = fastFetched(c);
      const got = await fetchBodies(c, sizes, '1:*', 'a: INBOX');
      assert.equal(fastFetched(c) - mid, sent.length, 'every body answer decoded here');
      assert.equal(got.complete, true);
      assert.ok(uids!.every((u, i) => { const b = got.bodies.get(u); return Buffer.isBuffer(b) && b.equals(sent[i]!); }), 'every body byte for byte');
    } finally {
      await c.logout();
    }
  });
});
