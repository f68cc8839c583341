/**
 * A save holds the mbox dotlock while its source hands over the mail, which can take longer
 * than the two minutes after which Dovecot takes an untouched dotlock for stale: the lock is
 * touched while it is held, and no longer once released.
 */
import assert from 'node:assert/strict';
import { existsSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import type { MboxContext } from '../../src/storage/mbox/mbox-index-sync.js';
import { LOCK_TOUCH_MS, withMboxLock } from '../../src/storage/mbox/mbox-lock.js';

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond());
}

it('a held mbox dotlock is kept fresh until it is released', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-lock-'));
  try {
    const path = join(dir, 'inbox');
    const lockPath = `${path}.lock`;
    writeFileSync(path, '');
    const ctx = { path, lockTimeoutSeconds: 5, fsync: false, warn: () => {} } as unknown as MboxContext;
    t.mock.timers.enable({ apis: ['setInterval'] });
    let finish!: () => void;
    const held = withMboxLock(ctx, 'read', () => new Promise<void>((resolve) => (finish = resolve)));
    await until(() => existsSync(lockPath) && finish !== undefined);
    const past = Math.floor(Date.now() / 1000) - 100;
    utimesSync(lockPath, past, past);
    t.mock.timers.tick(LOCK_TOUCH_MS - 1);
    assert.equal(statSync(lockPath).mtimeMs, past * 1000, 'not touched before its time');
    t.mock.timers.tick(1);
    assert.ok(statSync(lockPath).mtimeMs > Date.now() - 10_000, 'touched while held');
    finish();
    await held;
    assert.equal(existsSync(lockPath), false, 'released');
    t.mock.timers.tick(LOCK_TOUCH_MS);
    assert.equal(existsSync(lockPath), false, 'and not brought back by a touch');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
