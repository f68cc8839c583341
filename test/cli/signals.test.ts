/**
 * Ctrl-C (SIGINT), SIGTERM and SIGHUP: the run stops with 128 + the signal number, says so,
 * removes its temporary files and its run locks, and the next run finishes the copy.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, cliChild, deliver, messageFiles } from './cli-child.js';

const TOTAL = 3000;


/** Signals a backup a third of the way through the time a whole one took. */
async function interruptWhileCopying(src: string, dest: string, signal: NodeJS.Signals, wholeMs: number) {
  // fsync on every message keeps the copy slow enough to be caught in the middle.
  const run = cliChild(['-o', 'mail_fsync=always', 'backup', `maildir:${src}`, `maildir:${dest}`]);
  await new Promise((r) => setTimeout(r, wholeMs / 3));
  run.child.kill(signal);
  const code = await run.exited;
  return { code, stderr: run.output.stderr, copied: messageFiles(dest).length };
}

describe('cli: signals', { timeout: 300_000 }, () => {
  let dir: string;
  let wholeMs = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-signals-'));
    deliver(join(dir, 'src'), TOTAL, 'signal');
    const started = Date.now();
    const probe = cliChild(['-o', 'mail_fsync=always', 'backup', `maildir:${join(dir, 'src')}`, `maildir:${join(dir, 'probe')}`]);
    assert.equal(await probe.exited, 0, probe.output.stderr);
    wholeMs = Date.now() - started;
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    it(`${signal} while waiting for a run lock: exit ${status}, the lock already taken is released`, async () => {
      const [a, b] = [join(dir, 'src'), join(dir, `z-busy-${signal}`)];
      deliver(b, 1, 'busy');
      const holder = spawn('sleep', ['30']);
      const foreign = join(b, 'mailferry-sync.lock');
      writeFileSync(foreign, `${holder.pid}:${hostname()}`);
      try {
        // The source's lock sorts first, so it is held while the run waits for the destination's.
        const run = cliChild(['sync', `maildir:${a}`, `maildir:${b}`]);
        while (!existsSync(join(a, 'mailferry-sync.lock')) && run.child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
        run.child.kill(signal);
        assert.equal(await run.exited, status, run.output.stderr);
        assert.equal(run.output.stderr, `mailferry: interrupted by ${signal}\n`);
        assert.equal(existsSync(join(a, 'mailferry-sync.lock')), false, 'its own lock released');
        assert.equal(existsSync(foreign), true, "another run's lock left alone");
      } finally {
        holder.kill();
        unlinkSync(foreign);
      }
    });
  }

  // The handler runs between awaits; a store that saves a whole batch without yielding holds it off to the end.
  for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} stops a backup with exit ${status}, leaving no temporary files and no lock`, async () => {
      const src = join(dir, 'src');
      // Each signal its own destination: a second run into the first one's would have less to copy.
      const dest = join(dir, `dest-${signal}`);
      const r = await interruptWhileCopying(src, dest, signal, wholeMs);
      assert.ok(r.copied < TOTAL, 'caught in the middle');
      assert.equal(r.code, status, r.stderr);
      assert.match(r.stderr, new RegExp(`mailferry: interrupted by ${signal}`));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.deepEqual(readdirSync(join(dest, 'tmp')), [], 'no temporary files left');
      for (const d of [src, dest]) assert.equal(existsSync(join(d, 'mailferry-sync.lock')), false, `run lock released in ${d}`);
    });
  }

  it('the next run completes the copy', () => {
    const r = cli(['backup', `maildir:${join(dir, 'src')}`, `maildir:${join(dir, 'dest-SIGINT')}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(messageFiles(join(dir, 'dest-SIGINT')).length, TOTAL);
  });
});
