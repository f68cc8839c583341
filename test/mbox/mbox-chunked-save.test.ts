/**
 * A save of more messages than one chunk (SAVE_CHUNK) into an mbox: the first chunk of a new
 * mailbox rewrites its pseudo message away, the later ones append. Killed inside a later chunk
 * and run again, every message is there once and whole, and Dovecot reads the same UIDs and
 * flags as mailferry.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { SAVE_CHUNK } from '../../src/storage/mbox/mbox-mailbox.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { readAll } from '../contract/store-contract.js';
import { doveadmFetch, doveadmMailboxStatus, grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';
import { syntheticMboxBody } from './mbox-save-child.js';
import { runTsChild, type ChildEnd } from '../support/run-ts-child.js';

const CHILD = join(import.meta.dirname, 'mbox-save-child.ts');
/** Three chunks: a rewrite, then two appends. */
const COUNT = 2 * SAVE_CHUNK + 50;

/** Saves g0..g{COUNT-1} (those not there yet) in one call, as one backup of a mailbox does. */
function runChild(location: string, env: Record<string, string>): Promise<ChildEnd> {
  return runTsChild(CHILD, [location, String(COUNT), String(COUNT), 'save'], { env });
}

/** Every message whole and there once; returns `uid flags` lines in UID order. */
async function contents(location: string): Promise<{ guids: string[]; lines: string[] }> {
  const store = MboxStore.open(parseLocation(location) as MboxLocation, { fsync: false, warn: () => {} });
  try {
    const { messages } = await store.getMessages(['INBOX']);
    const guids = messages.map((m) => m.guid);
    assert.equal(new Set(guids).size, guids.length, 'no message twice');
    for (const m of messages) {
      const body = await readAll(await store.openMessage(['INBOX'], m.uid));
      assert.ok(body.equals(syntheticMboxBody(Number(m.guid.slice(1)))), `${m.guid} is whole`);
    }
    return { guids, lines: messages.map((m) => `${m.uid} ${[...m.flags, ...m.keywords].sort().join(' ')}`) };
  } finally {
    await store.close();
  }
}

describe('mbox: a save of several chunks', { timeout: 300_000 }, () => {
  let d: Dovecot;
  let scratch: string;
  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: false });
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-mbox-chunks-'));
  });
  after(async () => {
    await d?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('a chunk whose keywords no longer fit the X-IMAPbase padding rewrites the file, and the next ones go on', async () => {
    const root = join(scratch, 'keywords', 'mail');
    const location = `mbox:${root}:INDEX=${join(scratch, 'keywords-index')}`;
    const store = MboxStore.open(parseLocation(location) as MboxLocation, { create: true, fsync: false, warn: () => {} });
    // The file's inode when each chunk is asked for: the one before it is written by then.
    const inodes: number[] = [];
    async function* requests() {
      for (let i = 0; i < COUNT; i++) {
        if (i % SAVE_CHUNK === 0 && i > 0) inodes.push(statSync(join(root, 'inbox')).ino);
        // A keyword of its own for every message: each chunk adds 200 to X-IMAPbase.
        yield { guid: `g${i}`, flags: i % 2 ? (['\\Seen'] as const).slice() : [], keywords: [`kw${i}`], receivedDate: Date.UTC(2020, 0, 1) + i * 1000, body: () => Readable.from([syntheticMboxBody(i)]) };
      }
    }
    try {
      const saved = await store.saveMessages(['INBOX'], requests());
      assert.deepEqual(saved.map((m) => m.uid), Array.from({ length: COUNT }, (_, i) => i + 1));
    } finally {
      await store.close();
    }
    const { guids, lines } = await contents(location);
    assert.equal(guids.length, COUNT);
    assert.notEqual(inodes[0], inodes[1], 'the second chunk rewrote the file');
    assert.deepEqual(lines.slice(-2), [`${COUNT - 1} kw${COUNT - 2}`, `${COUNT} \\Seen kw${COUNT - 1}`]);
    mkdirSync(join(scratch, 'keywords', 'dovecot-index'));
    await grantDovecotAccess(join(scratch, 'keywords'));
    const dv = `mbox:${root}:INBOX=${join(root, 'inbox')}:INDEX=${join(scratch, 'keywords', 'dovecot-index')}`;
    const fetched = await doveadmFetch(d, 'alice', dv, 'INBOX');
    assert.deepEqual(fetched.map((m) => `${m.uid} ${[...m.flags].sort().join(' ')}`), lines, 'doveadm reads the same UIDs, flags and keywords');
  });

  const points = [
    // The first append chunk: mid-way, and with all of it written but not fsynced.
    'mbox-append-after-message:50',
    'mbox-append-before-fsync:1',
    // The second append chunk: its last UID raised in place, nothing appended yet.
    'mbox-patch-before-fsync:2',
    // Everything written, nothing in the index.
    'mbox-save-before-index:1',
  ];
  for (const [n, point] of points.entries()) {
    it(`killed at ${point}, then run again: nothing lost or twice, and doveadm reads the same UIDs`, async () => {
      const root = join(scratch, `run${n}`, 'mail');
      const location = `mbox:${root}:INDEX=${join(scratch, `run${n}-index`)}`;
      const killed = await runChild(location, { MAILFERRY_FAILPOINT: point });
      assert.equal(killed.signal, 'SIGKILL', 'the failpoint was reached');
      const partial = await contents(location);
      assert.ok(partial.guids.length >= SAVE_CHUNK, `the first chunk is there (${partial.guids.length})`);
      assert.equal(await runChild(location, {}).then((r) => r.signal), null);
      const { guids, lines } = await contents(location);
      assert.deepEqual([...guids].sort(), Array.from({ length: COUNT }, (_, i) => `g${i}`).sort(), 'every message once');
      assert.equal(readFileSync(join(root, 'inbox'), 'latin1').match(/^X-IMAPbase: /gm)?.length, 1, 'one X-IMAPbase, in the first message');

      mkdirSync(join(scratch, `run${n}`, 'dovecot-index'));
      await grantDovecotAccess(join(scratch, `run${n}`));
      const dv = `mbox:${root}:INBOX=${join(root, 'inbox')}:INDEX=${join(scratch, `run${n}`, 'dovecot-index')}`;
      const fetched = await doveadmFetch(d, 'alice', dv, 'INBOX');
      assert.deepEqual(fetched.map((m) => `${m.uid} ${[...m.flags].sort().join(' ')}`), lines, 'doveadm reads the same UIDs and flags');
      const store = MboxStore.open(parseLocation(location) as MboxLocation, { fsync: false, warn: () => {} });
      try {
        const ours = (await store.mailboxStatus(['INBOX']))!;
        const theirs = await doveadmMailboxStatus(d, 'alice', dv, 'INBOX');
        assert.deepEqual({ uidvalidity: theirs.uidvalidity, uidnext: theirs.uidnext }, { uidvalidity: ours.uidValidity, uidnext: ours.uidNext });
      } finally {
        await store.close();
      }
    });
  }
});
