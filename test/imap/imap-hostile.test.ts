/**
 * Servers that do not send what they announce: bodies are checked against RFC822.SIZE, memory
 * follows what the index holds rather than what the server sends, and -T bounds the time a
 * command may take, retries included.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MailferryError } from '../../src/model/errors.js';
import { openStore } from '../../src/storage/open-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { readAll } from '../contract/store-contract.js';
import { HostileImapServer, type HostileScript } from '../support/hostile-imap-server.js';
import { runTsChild } from '../support/run-ts-child.js';
import { cliAsync, passwordFile } from './imap-helpers.js';

const mail = (i: number, filler = 100) => `Subject: message ${i}\nMessage-ID: <m${i}@hostile>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n${'x'.repeat(filler)}\n`;

describe('IMAP servers that misbehave', { timeout: 60_000 }, () => {
  let dir: string;
  let pw: string;
  let n = 0;
  const servers: HostileImapServer[] = [];
  const serve = async (script: HostileScript, count: number, filler?: number) => {
    const s = await HostileImapServer.start(script);
    servers.push(s);
    for (let i = 1; i <= count; i++) s.add('INBOX', mail(i, filler));
    return s;
  };
  const loc = (s: HostileImapServer) => `imap://alice@127.0.0.1:${s.port}/?tls=none&state=${join(dir, `state${++n}`)}`;
  const open = (s: HostileImapServer, extra: Record<string, unknown> = {}) => openStore(loc(s), { passwordFile: pw, warn: () => {}, ...extra } as never) as Promise<MailStore>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-hostile-'));
    pw = passwordFile(dir, 'alice', 'secret');
  });
  after(async () => {
    for (const s of servers) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('BODY[] NIL, {0} or a short body for a message announced larger: an error naming mailbox and UID, never an empty message', async () => {
    const answers: Record<number, Buffer | null> = { 2: null, 3: Buffer.alloc(0), 4: Buffer.from('Subject: cut\r\n') };
    const s = await serve({ body: (m) => (m.uid in answers ? answers[m.uid]! : m.body) }, 5, 120);
    const store = await open(s);
    try {
      const { messages } = await store.getMessages(['INBOX']);
      assert.equal(messages.length, 5);
      // The store numbers its own UIDs; the server's are 1..5 in the same order.
      for (const [k, m] of messages.entries()) {
        if (!(k + 1 in answers)) {
          assert.equal((await readAll(await store.openMessage(['INBOX'], m.uid))).toString(), mail(k + 1, 120));
          continue;
        }
        await assert.rejects(async () => readAll(await store.openMessage(['INBOX'], m.uid)), (err: Error) => {
          assert.ok(err instanceof MailferryError && err.kind === 'data', String(err));
          assert.match(err.message, new RegExp(`mailbox 'INBOX': message UID ${k + 1}: the server announced ${m.size} bytes and sent`));
          return true;
        });
      }
    } finally {
      await store.close();
    }
  });

  it('20 bodies of 20 MB announced as 100 bytes: refused as they arrive, RSS stays near where it was', async () => {
    const s = await serve({ announcedSize: () => 100, body: () => ({ bytes: 20 * 1024 * 1024 }) }, 20, 40);
    const out = join(dir, 'rss.json');
    await runTsChild(join(import.meta.dirname, '../support/imap-read-child.ts'), [loc(s), pw, out]);
    const r = JSON.parse(await readFile(out, 'utf8')) as { before: number; peak: number; results: Record<string, number | string> };
    const mb = (x: number) => Math.round(x / 1024 / 1024);
    assert.equal(Object.keys(r.results).length, 20);
    for (const [k, v] of Object.values(r.results).entries()) assert.match(String(v), new RegExp(`message UID ${k + 1}: the server announced 100 bytes and sent more`));
    assert.ok(r.peak - r.before < 60 * 1024 * 1024, `RSS grew by ${mb(r.peak - r.before)} MB (from ${mb(r.before)} MB)`);
  });

  it('a body somewhat larger than announced among honest ones: only that one is refused, the rest of its batch is read', async () => {
    const s = await serve({ body: (m) => (m.uid === 3 ? Buffer.concat([m.body, Buffer.alloc(200, 'y')]) : m.body) }, 6, 200);
    const store = await open(s);
    try {
      for (const [k, m] of (await store.getMessages(['INBOX'])).messages.entries()) {
        if (k + 1 === 3) await assert.rejects(store.openMessage(['INBOX'], m.uid), /message UID 3: the server announced \d+ bytes and sent more/);
        else assert.equal((await readAll(await store.openMessage(['INBOX'], m.uid))).toString(), mail(k + 1, 200));
      }
      assert.equal(s.bodyFetches, 1);
    } finally {
      await store.close();
    }
  });

  it('-T 5 against a server sending one byte every 2 s: exit 75 in about 5 s, not never', async () => {
    const s = await serve({ trickleMs: 2000 }, 3);
    const r = await cliAsync(pw, ['backup', '-T', '5', loc(s), `maildir:${join(dir, 'trickle-out')}`]);
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /no answer from the server within 5 s/);
    assert.ok(r.ms < 12_000, `took ${r.ms} ms`);
  });

  it('a server that never answers: the retries share one -T, they do not each get it', async () => {
    const s = await serve({ silentBodies: true }, 3);
    const store = await open(s, { ioTimeoutSeconds: 2 });
    try {
      const [first] = (await store.getMessages(['INBOX'])).messages;
      const t = Date.now();
      await assert.rejects(store.openMessage(['INBOX'], first!.uid), (err: Error) => err instanceof MailferryError && err.kind === 'tempfail' && /within 2 s/.test(err.message));
      const ms = Date.now() - t;
      assert.ok(ms < 3_500, `gave up after ${ms} ms`);
      assert.ok(s.connections >= 2, 'the stalled command was retried on a new connection');
    } finally {
      await store.close();
    }
  });
});
