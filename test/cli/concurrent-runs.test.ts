/**
 * Runs on one pair exclude each other without -l: three syncs at once while mail arrives on
 * both sides lose nothing and duplicate nothing, and a run that cannot get the run lock in
 * time says which lock and whose in one line (exit 75), never with a stack trace.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, cliChild, deliver, subjectsIn } from './cli-child.js';

describe('cli: concurrent runs on one pair', { timeout: 300_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-concurrent-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  let pair: { a: string; b: string; delivered: string[] } | undefined;
  const threeAtOnce = async () => {
    const [a, b] = [join(dir, 'a'), join(dir, 'b')];
    const delivered = [...deliver(a, 200, 'a-first'), ...deliver(b, 200, 'b-first')];
    assert.equal(cli(['sync', `maildir:${a}`, `maildir:${b}`]).code, 0);
    const runs = [0, 1, 2].map(() => cliChild(['sync', `maildir:${a}`, `maildir:${b}`]));
    let running = runs.length;
    for (const r of runs) void r.exited.then(() => running--);
    for (let n = 0; running > 0 && n < 100; n++) {
      delivered.push(...deliver(a, 2, 'a-late'), ...deliver(b, 2, 'b-late'));
      await new Promise((r) => setTimeout(r, 15));
    }
    const codes = await Promise.all(runs.map((r) => r.exited));
    for (const [i, r] of runs.entries()) {
      assert.ok([0, 2, 75].includes(codes[i]!), `run ${i} exit ${codes[i]}: ${r.output.stderr}`);
      assert.doesNotMatch(r.output.stderr, /SqliteError|database is locked|\n\s+at /, `run ${i}: ${r.output.stderr}`);
    }
    return { a, b, delivered };
  };

  it('three syncs at once with deliveries on both sides: each exits 0, 2 or 75, none with a stack trace', async () => {
    pair = await threeAtOnce();
  });

  it('... and afterwards every message is on both sides, once', () => {
    assert.ok(pair, 'the runs above');
    const { a, b, delivered } = pair;
    let last = cli(['sync', `maildir:${a}`, `maildir:${b}`]);
    for (let tries = 0; last.code === 2 && tries < 3; tries++) last = cli(['sync', `maildir:${a}`, `maildir:${b}`]);
    assert.equal(last.code, 0, last.stderr);
    const expected = [...delivered].sort();
    assert.deepEqual(subjectsIn(a), expected, 'source holds every message once');
    assert.deepEqual(subjectsIn(b), expected, 'destination holds every message once');
  });

  it("a second run while one holds the pair: with -l 0 it gives up at once, naming the first run's process", async () => {
    const [a, b] = [join(dir, 'big-a'), join(dir, 'big-b')];
    deliver(a, 2000, 'big');
    const first = cliChild(['-o', 'mail_fsync=always', 'sync', `maildir:${a}`, `maildir:${b}`]);
    while (!existsSync(join(a, 'mailferry-sync.lock')) && first.child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
    const second = cli(['sync', '-l', '0', `maildir:${a}`, `maildir:${b}`]);
    assert.equal(second.code, 75, second.stderr);
    assert.match(second.stderr, new RegExp(`^mailferry: error: another run on this pair holds .*mailferry-sync\\.lock by process ${first.child.pid} `));
    assert.equal(await first.exited, 0, first.output.stderr);
    assert.equal(cli(['sync', `maildir:${a}`, `maildir:${b}`]).code, 0, 'the lock is gone with its run');
  });

  it('a run that cannot get the run lock in time: exit 75, one line naming the lock and its holder', () => {
    const [a, b] = [join(dir, 'a'), join(dir, 'b')];
    const holder = spawn('sleep', ['30']);
    const lock = join(b, 'mailferry-sync.lock');
    try {
      writeFileSync(lock, `${holder.pid}:${hostname()}`);
      // No -l: every run takes the lock; -o lock_timeout only shortens the default wait.
      const started = Date.now();
      const r = cli(['-o', 'lock_timeout=1', 'sync', `maildir:${a}`, `maildir:${b}`]);
      assert.equal(r.code, 75, r.stderr);
      assert.ok(Date.now() - started >= 1000, 'it waited');
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`^mailferry: error: .*${lock.replace(/[.]/g, '\\.')}.*process ${holder.pid}`));
      for (const cmd of ['backup', 'sync']) assert.equal(cli([cmd, '-l', '0', `maildir:${a}`, `maildir:${b}`]).code, 75, `${cmd} -l 0`);
    } finally {
      holder.kill();
      unlinkSync(lock);
    }
    assert.equal(cli(['sync', `maildir:${a}`, `maildir:${b}`]).code, 0);
  });
});
