/**
 * Scans keep no header text: a flag change in place and a rewrite read each header back from
 * the file when they write it. The header lines other programs put among Dovecot's metadata
 * lines must come through both byte for byte, and a header that is not the one the scan saw
 * at that offset must stop the write instead of being written over.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { readAll } from '../contract/store-contract.js';

/** Lines that are not metadata, after the first metadata line (X-IMAPbase), one folded. */
const KEPT_ONE = 'X-Spam-Level: **\nX-Folded: first\n  second part\n';
const KEPT_TWO = 'X-Trailer: after the metadata too\n';

const FILE =
  'From sender@example.org  Mon Jan  1 10:00:00 2024\n' +
  'Date: Mon, 1 Jan 2024 10:00:00 +0000\n' +
  'Message-ID: <one@example.org>\n' +
  `X-IMAPbase: 1700000000 0000000002${' '.repeat(20)}\n` +
  'X-UID: 1\n' +
  'Status: O\n' +
  KEPT_ONE +
  `X-Keywords:${' '.repeat(60)}\n` +
  'Content-Length: 6\n' +
  '\n' +
  'body1\n' +
  '\n' +
  'From sender@example.org  Mon Jan  1 10:01:00 2024\n' +
  'Message-ID: <two@example.org>\n' +
  'X-UID: 2\n' +
  'Status: O\n' +
  KEPT_TWO +
  `X-Keywords:${' '.repeat(60)}\n` +
  'Content-Length: 6\n' +
  '\n' +
  'body2\n';

/** A whole-second mtime in the past: the next read trusts it, and it can be set again exactly. */
function setPast(path: string, at: number): void {
  utimesSync(path, at, at);
}

describe('mbox: headers read back when written', () => {
  let dir: string;
  let inbox: string;
  const open = (index = 'idx') =>
    MboxStore.open(parseLocation(`mbox:${join(dir, 'mail')}:INDEX=${join(dir, index)}`) as MboxLocation, { create: true, fsync: false, warn: () => {} });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-readback-'));
    const s = open();
    await s.close();
    inbox = join(dir, 'mail', 'inbox');
    writeFileSync(inbox, FILE);
    setPast(inbox, Math.floor(Date.now() / 1000) - 60);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function served(s: MboxStore): Promise<string[]> {
    const { messages } = await s.getMessages(['INBOX']);
    return Promise.all(messages.map(async (m) => (await readAll(await s.openMessage(['INBOX'], m.uid))).toString('latin1')));
  }

  it('a flag change in place keeps the other header lines among the metadata, byte for byte', async () => {
    const s = open();
    const before = await served(s);
    assert.ok(before[0]!.includes(KEPT_ONE) && before[1]!.includes(KEPT_TWO), 'served with the lines kept');
    await s.updateFlags(['INBOX'], [
      { uid: 1, flags: ['\\Seen', '\\Flagged'], keywords: ['kw-one'] },
      { uid: 2, flags: ['\\Answered'], keywords: [] },
    ]);
    const text = readFileSync(inbox, 'latin1');
    assert.equal(text.length, FILE.length, 'written in place');
    // The kept lines now come first, the new metadata after them.
    assert.ok(text.includes(`Message-ID: <one@example.org>\n${KEPT_ONE}X-IMAPbase: `), 'the lines of message 1 are still there');
    assert.ok(text.includes(`Message-ID: <two@example.org>\n${KEPT_TWO}X-UID: 2\n`), 'and those of message 2');
    assert.deepEqual(await served(s), before, 'both messages are served as before');
    await s.close();
    // A store with a fresh index reads the flags from the file alone.
    const fresh = open('idx2');
    const { messages } = await fresh.getMessages(['INBOX']);
    assert.deepEqual(
      messages.map((m) => `${m.uid} ${[...m.flags, ...m.keywords].sort().join(' ')}`),
      ['1 \\Flagged \\Seen kw-one', '2 \\Answered'],
    );
    assert.deepEqual(await served(fresh), before);
    await fresh.close();
  });

  it('a rewrite (an expunge) keeps them too', async () => {
    const s = open();
    const before = await served(s);
    await s.updateFlags(['INBOX'], [{ uid: 1, flags: ['\\Seen'], keywords: ['x'.repeat(80)] }]);
    await s.expunge(['INBOX'], [2]);
    assert.ok(readFileSync(inbox, 'latin1').includes(KEPT_ONE));
    assert.deepEqual(await served(s), [before[0]]);
    await s.close();
    const fresh = open('idx2');
    const { messages } = await fresh.getMessages(['INBOX']);
    assert.deepEqual(messages.map((m) => `${m.uid} ${[...m.flags, ...m.keywords].join(' ')}`), [`1 \\Seen ${'x'.repeat(80)}`]);
    await fresh.close();
  });

  it('a header changed behind a scan that still looks current is not written over', async () => {
    const s = open();
    await s.getMessages(['INBOX']);
    // Another program ignoring the locks changes a header without changing the size, and puts
    // the mtime back: the store's last scan of the file still looks current.
    const mtime = statSync(inbox).mtimeMs / 1000;
    const changed = FILE.replace('<two@example.org>', '<TWO@example.org>');
    writeFileSync(inbox, changed);
    setPast(inbox, mtime);
    await assert.rejects(s.updateFlags(['INBOX'], [{ uid: 2, flags: ['\\Seen'], keywords: [] }]), /not the one scanned/);
    assert.equal(readFileSync(inbox, 'latin1'), changed, 'nothing was written');
    await s.close();
  });

  it('so is a message moved behind such a scan, when a rewrite copies it', async () => {
    const s = open();
    await s.getMessages(['INBOX']);
    const mtime = statSync(inbox).mtimeMs / 1000;
    // The second message's From line one byte earlier, the size unchanged.
    const changed = FILE.replace('\nFrom sender@example.org  Mon Jan  1 10:01', 'From sender@example.org  Mon Jan  1 10:01').replace('body2\n', 'body2\n\n');
    assert.equal(changed.length, FILE.length);
    writeFileSync(inbox, changed);
    setPast(inbox, mtime);
    await assert.rejects(s.expunge(['INBOX'], [1]), /not the one scanned/);
    assert.equal(readFileSync(inbox, 'latin1'), changed, 'nothing was written');
    await s.close();
  });
});
