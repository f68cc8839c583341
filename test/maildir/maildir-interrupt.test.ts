/**
 * Killing a save at each of its steps (and at random moments) leaves no partial message
 * visible, no index inconsistency, and a re-run ends with every message exactly once.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { readAll } from '../contract/store-contract.js';
import { syntheticBody } from '../support/save-child.js';
import { runTsChild, type ChildEnd } from '../support/run-ts-child.js';

const CHILD = join(import.meta.dirname, '../support/save-child.ts');
const COUNT = 30;

function runChild(location: string, env: Record<string, string>, killAfterMs?: number): Promise<ChildEnd> {
  return runTsChild(CHILD, [location, String(COUNT), '10'], { env, killAfterMs });
}

/** What a reader sees after the crash: every visible message is whole and listed once. */
async function assertConsistent(root: string, expectAll: boolean): Promise<void> {
  const store = MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { fsync: false, warn: () => {} });
  try {
    const { messages } = await store.getMessages(['INBOX']);
    const files = [...readdirSync(join(root, 'cur')), ...readdirSync(join(root, 'new'))];
    assert.equal(messages.length, files.length, 'every file is indexed, nothing indexed is missing');
    const guids = messages.map((m) => m.guid);
    assert.equal(new Set(guids).size, guids.length, 'no message twice');
    for (const m of messages) {
      const i = Number(m.guid.slice(1));
      assert.match(m.guid, /^g\d+$/);
      assert.ok((await readAll(await store.openMessage(['INBOX'], m.uid))).equals(syntheticBody(i)), `${m.guid} is whole`);
      assert.equal(m.uid, 2 * i + 1, `${m.guid} has the UID its save asked for, even when a crash left its file unrecorded`);
    }
    const uidlist = readFileSync(join(root, 'dovecot-uidlist'), 'utf8').trim().split('\n').slice(1);
    assert.equal(uidlist.length, messages.length, 'uidlist lists each file once');
    if (expectAll) assert.equal(messages.length, COUNT);
  } finally {
    await store.close();
  }
}

describe('maildir: interrupted saves', () => {
  const points = [
    'save-before-rename:3',
    'save-after-rename:5',
    'save-before-uidlist:1',
    'save-before-uidlist:2',
    'save-before-index:2',
    'save-after-index:1',
  ];
  for (const point of points) {
    it(`killed at ${point}: nothing partial, re-run completes without duplicates`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-kill-'));
      const root = join(dir, 'Maildir');
      try {
        const first = await runChild(`maildir:${root}`, { MAILFERRY_FAILPOINT: point });
        assert.equal(first.signal, 'SIGKILL', 'the failpoint was reached');
        await assertConsistent(root, false);
        await runChild(`maildir:${root}`, {});
        await assertConsistent(root, true);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('killed at random moments, five times over: still consistent, then complete', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-kill-'));
    const root = join(dir, 'Maildir');
    try {
      for (let round = 0; round < 5; round++) {
        await runChild(`maildir:${root}`, {}, 300 + Math.floor(Math.random() * 700));
        await assertConsistent(root, false).catch((err: Error) => {
          // The Maildir may not exist yet if the kill came before the child opened it.
          if (!/ENOENT|no such file/i.test(String(err.message))) throw err;
        });
      }
      await runChild(`maildir:${root}`, {});
      await assertConsistent(root, true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
