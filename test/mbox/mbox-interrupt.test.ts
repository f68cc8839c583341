/**
 * Killing a save (append or rewrite) and a flag change or expunge (in place or rewrite) at
 * each of their steps, and at random moments: the file still parses, every message in it is
 * whole and there once, and a re-run ends with every message exactly once.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { readAll } from '../contract/store-contract.js';
import { syntheticMboxBody } from './mbox-save-child.js';
import { runTsChild, type ChildEnd } from '../support/run-ts-child.js';

const CHILD = join(import.meta.dirname, 'mbox-save-child.ts');
const COUNT = 24;

function runChild(location: string, env: Record<string, string>, mode = 'save', killAfterMs?: number): Promise<ChildEnd> {
  return runTsChild(CHILD, [location, String(COUNT), '8', mode], { env, killAfterMs });
}

/** Every message is whole and there once; returns the GUIDs present. */
async function assertConsistent(location: string): Promise<string[]> {
  const store = MboxStore.open(parseLocation(location) as MboxLocation, { fsync: false, warn: () => {} });
  try {
    const { messages } = await store.getMessages(['INBOX']);
    const guids = messages.map((m) => m.guid);
    assert.equal(new Set(guids).size, guids.length, 'no message twice');
    for (const m of messages) {
      assert.match(m.guid, /^g\d+$/);
      const body = await readAll(await store.openMessage(['INBOX'], m.uid));
      assert.ok(body.equals(syntheticMboxBody(Number(m.guid.slice(1)))), `${m.guid} is whole`);
      assert.equal(m.size, body.length);
    }
    return guids;
  } finally {
    await store.close();
  }
}

describe('mbox: interrupted writes', { timeout: 120_000 }, () => {
  const savePoints = [
    'mbox-rewrite-before-rename:1',
    'mbox-rewrite-after-rename:1',
    'mbox-patch-before-fsync:1',
    'mbox-patch-before-fsync:2',
    'mbox-append-after-message:3',
    'mbox-append-mid-message:1',
    'mbox-append-before-fsync:1',
    'mbox-save-before-index:2',
  ];
  for (const point of savePoints) {
    it(`a save killed at ${point}: nothing partial, re-run completes without duplicates`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-kill-'));
      const location = `mbox:${join(dir, 'mail')}`;
      try {
        const first = await runChild(location, { MAILFERRY_FAILPOINT: point });
        assert.equal(first.signal, 'SIGKILL', 'the failpoint was reached');
        await assertConsistent(location);
        await runChild(location, {});
        assert.equal((await assertConsistent(location)).length, COUNT);
        assert.deepEqual(readdirSync(join(dir, 'mail')).filter((f) => f.endsWith('.mailferry-tmp')), [], 'no temp file is left behind');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  for (const point of ['mbox-patch-before-fsync:1', 'mbox-rewrite-before-rename:1', 'mbox-rewrite-after-rename:1']) {
    it(`flag changes and expunges killed at ${point} lose nothing else`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-kill-'));
      const location = `mbox:${join(dir, 'mail')}`;
      try {
        await runChild(location, {});
        const killed = await runChild(location, { MAILFERRY_FAILPOINT: point }, 'churn');
        assert.equal(killed.signal, 'SIGKILL');
        const left = await assertConsistent(location);
        const kept = Array.from({ length: COUNT }, (_, i) => `g${i}`).filter((g) => Number(g.slice(1)) % 3 !== 0);
        for (const g of kept) assert.ok(left.includes(g), `${g} is still there`);
        await runChild(location, {}, 'churn');
        assert.deepEqual((await assertConsistent(location)).sort(), kept.sort());
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('killed at random moments, four times over: still consistent, then complete', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-kill-'));
    const location = `mbox:${join(dir, 'mail')}`;
    try {
      for (let round = 0; round < 4; round++) {
        await runChild(location, {}, 'save', 400 + Math.floor(Math.random() * 600));
        await assertConsistent(location).catch((err: Error) => {
          if (!/ENOENT|no such file|does not exist/i.test(String(err.message))) throw err;
        });
      }
      await runChild(location, {});
      assert.equal((await assertConsistent(location)).length, COUNT);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
