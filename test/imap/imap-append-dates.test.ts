/**
 * A server that refuses internal dates before 1970 (Cyrus: "NO Invalid date-time", or BAD):
 * such a message is saved dated 1970-01-01 with a warning, once, and a MULTIAPPEND refused
 * because of it is not sent twice for what the server kept of it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { openStore } from '../../src/storage/open-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { req } from '../contract/store-contract.js';
import { HostileImapServer, type HostileScript } from '../support/hostile-imap-server.js';
import { passwordFile } from './imap-helpers.js';

let dir: string;
let pw: string;
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailferry-append-dates-'));
  pw = passwordFile(dir, 'alice', 'secret');
});
after(() => rm(dir, { recursive: true, force: true }));

const DATES = [Date.UTC(2001, 1, 2), Date.UTC(1969, 6, 20, 20, 17), Date.UTC(2003, 4, 5), Date.UTC(1901, 0, 1)];
const message = (i: number) => Buffer.from(`Subject: dated ${i}\nMessage-ID: <d${i}@test>\n\nbody ${i}\n`);

async function saveAll(script: HostileScript): Promise<{ server: HostileImapServer; warnings: string[]; saved: number }> {
  const server = await HostileImapServer.start(script);
  const warnings: string[] = [];
  const store = (await openStore(`imap://alice@127.0.0.1:${server.port}/?tls=none&state=${join(dir, `state${++n}`)}`, { passwordFile: pw, warn: (m: string) => warnings.push(m) } as never)) as MailStore;
  try {
    const saved = await store.saveMessages(['INBOX'], DATES.map((d, i) => req(message(i), { receivedDate: d })));
    return { server, warnings, saved: saved.length };
  } finally {
    await store.close();
    await server.close();
  }
}

for (const [how, script] of [
  ['NO, all or nothing', { refuseDate: (ms: number) => (ms < 0 ? 'NO' : undefined) }],
  ['BAD, keeping what came before the refused one', { refuseDate: (ms: number) => (ms < 0 ? 'BAD' : undefined), partialMultiappend: true }],
] as const) {
  it(`dates before 1970 refused (${how}): each message stored once, those dated 1970-01-01, with a warning naming them`, async () => {
    const { server, warnings, saved } = await saveAll(script);
    assert.equal(saved, DATES.length);
    const stored = server.mailboxes.get('INBOX')!;
    const subjects = stored.map((m) => /Subject: (.*)\r\n/.exec(m.body.toString())![1]).sort();
    assert.deepEqual(subjects, DATES.map((_, i) => `dated ${i}`), 'every message exactly once');
    for (const m of stored) {
      const i = Number(/dated (\d)/.exec(m.body.toString())![1]);
      assert.equal(m.internalDate, Math.max(0, DATES[i]!), `message ${i}`);
    }
    const dated = warnings.filter((w) => /refused the received date/.test(w));
    assert.equal(dated.length, 2, warnings.join('\n'));
    assert.match(dated.join('\n'), /mailbox 'INBOX'.*1969-07-20.*saved dated 1970-01-01/);
  });
}
