/**
 * Saving into an mbox in several calls (every incremental backup or sync does): each append is
 * read back by scanning only the parts that changed, and that must not read past a part's end.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { corpusMessages } from '../support/corpus.js';
import { readAll, req } from '../contract/store-contract.js';

it('saves in several calls: no warning, every message whole, in order', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-append-'));
  const warnings: string[] = [];
  const open = () => MboxStore.open(parseLocation(`mbox:${join(dir, 'm')}:INDEX=${join(dir, 'idx')}`) as MboxLocation, { create: true, fsync: false, warn: (m) => warnings.push(m) });
  const mail = corpusMessages(30).filter((m) => !m.includes('\r\n'));
  try {
    const s = open();
    for (let i = 0; i < mail.length; i += 7) {
      await s.saveMessages(['INBOX'], mail.slice(i, i + 7).map((m, j) => req(m, { keywords: j % 2 ? [`k${i}`] : [], flags: j % 3 ? ['\\Seen'] : [] })));
    }
    await s.close();
    const t = open();
    const { messages } = await t.getMessages(['INBOX']);
    assert.equal(messages.length, mail.length);
    for (const [i, m] of messages.entries()) assert.ok((await readAll(await t.openMessage(['INBOX'], m.uid))).equals(mail[i]!), `message ${i} is whole`);
    await t.close();
    assert.deepEqual(warnings, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
