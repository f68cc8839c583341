/**
 * fcntl locks, as Dovecot's mbox readers take them: a reader holding a read lock keeps a
 * mailferry write out, mailferry's write lock is visible to other processes, and it ends with
 * the mailferry process even when that is killed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MailferryError } from '../../src/model/errors.js';
import { fcntlLock } from '../../src/storage/mbox/fcntl-lock.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { message, req } from '../contract/store-contract.js';

/** Another process's fcntl lock attempt: 'LOCKED' (then held until killed) or 'BUSY'. */
const PROBE = `use Fcntl; $|=1; open(my $f, '+<', $ARGV[0]) or die; my $lk = pack('s s x4 q q l x4', $ARGV[1] eq 'w' ? F_WRLCK : F_RDLCK, 0, 0, 0, 0);
  if (fcntl($f, F_SETLK, $lk)) { print "LOCKED\\n"; sleep 60 } else { print "BUSY\\n" }`;

async function probe(path: string, type: 'r' | 'w'): Promise<{ line: string; child: ChildProcess }> {
  const child = spawn('perl', ['-e', PROBE, path, type], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  return { line: chunk.toString().trim(), child };
}

describe('mbox: fcntl locks', () => {
  let dir: string;
  let root: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-fcntl-'));
    root = join(dir, 'mail');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const open = (lockTimeoutSeconds = 30) =>
    MboxStore.open(parseLocation(`mbox:${root}`) as MboxLocation, { create: true, fsync: false, lockTimeoutSeconds, warn: () => {} });

  it('a reader holding an fcntl read lock makes a write wait, then fail with exit 75; released, the write goes through', async () => {
    const s = open(1);
    try {
      await s.saveMessages(['INBOX'], [req(message('first'))]);
      const reader = await probe(join(root, 'inbox'), 'r');
      assert.equal(reader.line, 'LOCKED');
      try {
        await assert.rejects(s.saveMessages(['INBOX'], [req(message('second'))]), (e: unknown) => e instanceof MailferryError && e.exitCode === 75 && /fcntl/.test(e.message) && e.message.includes(join(root, 'inbox')));
      } finally {
        reader.child.kill();
      }
      await once(reader.child, 'exit');
      await s.saveMessages(['INBOX'], [req(message('second'))]);
      assert.equal((await s.getMessages(['INBOX'])).messages.length, 2, 'nothing lost, nothing twice');
    } finally {
      await s.close();
    }
  });

  it('our write lock keeps other processes out until released', async () => {
    const s = open();
    await s.saveMessages(['INBOX'], [req(message('x'))]);
    await s.close();
    const path = join(root, 'inbox');
    const lock = await fcntlLock(path, 'write', 5, () => {});
    assert.ok(lock, 'perl is there (perl-base is Essential on Debian)');
    assert.equal((await probe(path, 'r')).line, 'BUSY');
    lock.release();
    for (let i = 0; i < 50; i++) {
      const p = await probe(path, 'w');
      p.child.kill();
      if (p.line === 'LOCKED') return;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail('the lock was not released');
  });

  it('the lock ends with a killed process', async () => {
    const s = open();
    await s.saveMessages(['INBOX'], [req(message('x'))]);
    await s.close();
    const path = join(root, 'inbox');
    const holder = spawn(process.execPath, ['--import', 'tsx', '-e', `
      const { fcntlLock } = await import(${JSON.stringify(join(import.meta.dirname, '../../src/storage/mbox/fcntl-lock.ts'))});
      await fcntlLock(${JSON.stringify(path)}, 'write', 5, () => {});
      console.log('held');
      setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(holder.stdout!, 'data');
    assert.equal((await probe(path, 'r')).line, 'BUSY');
    holder.kill('SIGKILL');
    await once(holder, 'exit');
    let line = '';
    for (let i = 0; i < 50 && line !== 'LOCKED'; i++) {
      const p = await probe(path, 'r');
      p.child.kill();
      line = p.line;
      if (line !== 'LOCKED') await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(line, 'LOCKED', 'the lock died with its holder');
    assert.equal(spawnSync('perl', ['-v']).status, 0);
  });
});
