/**
 * What `backup` and `sync` tell the user: JSON alone on stdout, planned counts in a dry run,
 * one summary wording, progress and -D detail that say something, and one-line errors with
 * the documented exit status.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, deliver } from './cli-child.js';

const SUMMARY = /^(\d+) mailboxes \((\d+) unchanged\), (copied|would copy) (\d+) messages \(\d+ bytes\), \d+ flag updates, \d+ expunges, \d+ mailbox changes, \d+ rebuilt$/m;

describe('cli: what backup and sync print', { timeout: 120_000 }, () => {
  let dir: string;
  let a: string;
  let b: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-output-'));
    a = `maildir:${join(dir, 'a')}`;
    b = `maildir:${join(dir, 'b')}`;
    deliver(join(dir, 'a'), 4, 'out');
    for (const f of ['.Work', '.Lists.dev']) deliver(join(dir, 'a', f), 1, `out${f}`);
    assert.equal(cli(['sync', a, b]).code, 0);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('sync --dry-run reports the planned counts, and with --json stdout is the JSON alone', () => {
    deliver(join(dir, 'a'), 1, 'planned');
    let r = cli(['sync', '--dry-run', '--json', a, b]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { saved: number };
    assert.equal(json.saved, 1);
    assert.match(r.stderr, /destination: mailbox INBOX: copy 1/);
    r = cli(['sync', '--dry-run', a, b]);
    assert.match(r.stdout, /destination: mailbox INBOX: copy 1/);
    assert.match(r.stderr, SUMMARY);
    assert.equal(SUMMARY.exec(r.stderr)![3], 'would copy');
    assert.equal(SUMMARY.exec(r.stderr)![4], '1');
    r = cli(['backup', '--dry-run', '--json', a, b]);
    assert.equal(JSON.parse(r.stdout).saved, 1, r.stdout);
  });

  it('backup and sync word their summaries alike; -v progress counts skipped mailboxes and is never all zeros', () => {
    assert.equal(cli(['sync', a, b]).code, 0);
    for (const cmd of ['sync', 'backup']) {
      const r = cli([cmd, '-v', a, b]);
      assert.equal(r.code, 0, r.stderr);
      const m = SUMMARY.exec(r.stderr);
      assert.ok(m, `${cmd}: ${r.stderr}`);
      assert.equal(m[1], '3', `${cmd}: three mailboxes`);
      const done = /mailferry: done: (\d+) mailboxes \((\d+) unchanged\)/.exec(r.stderr);
      assert.ok(done, `${cmd}: ${r.stderr}`);
      assert.deepEqual([done[1], done[2]], [m[1], m[2]], `${cmd}: progress and summary agree`);
      assert.doesNotMatch(r.stderr, /progress: .* 0\/\d+ messages, 0 B/, 'no line of zeros');
    }
  });

  it('-D adds timestamped detail on success: versions, per-mailbox plans and timings', () => {
    deliver(join(dir, 'a', '.Work'), 2, 'debug');
    const r = cli(['-D', 'sync', a, b]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /debug: mailferry \d+\.\d+\.\d+, node v\d+/);
    assert.match(r.stderr, /debug: \+\d+\.\d{3}s mailbox Work: done in \d+ ms/);
    assert.match(r.stderr, /debug: \+\d+\.\d{3}s mailbox (INBOX|Lists\.dev): unchanged/);
    assert.match(r.stderr, /destination: mailbox Work: copy 2/);
    assert.equal(r.stdout, '');
  });

  it('-m naming a mailbox neither side has exits 65 naming it', () => {
    for (const cmd of ['sync', 'backup']) {
      const r = cli([cmd, '-m', 'Nonexistent', a, b]);
      assert.equal(r.code, 65, `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, /^mailferry: error: mailbox 'Nonexistent' exists neither in /);
    }
    assert.equal(cli(['sync', '-m', 'Work', a, b]).code, 0);
  });

  it('an unknown option: one line with the mailferry: error: prefix, exit 64', () => {
    for (const args of [['sync', '--bogus', a, b], ['--frobnicate'], ['backup', '-Z']]) {
      const r = cli(args);
      assert.equal(r.code, 64, r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^mailferry: error: unknown option '(--bogus|--frobnicate|-Z)'/);
    }
  });

  it('a destination mailferry may not write exits 77 naming the directory', () => {
    const src = join(dir, 'perm-src');
    const dest = join(dir, 'perm-dest');
    deliver(src, 2, 'perm');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dest, sub), { recursive: true });
    // Run as nobody when we are root, who may write anywhere.
    const asRoot = process.getuid?.() === 0;
    const user = asRoot ? { uid: 65534, gid: 65534 } : {};
    chmodSync(dir, 0o755);
    if (asRoot) for (const p of [src, join(src, 'cur'), join(src, 'new'), join(src, 'tmp')]) chownSync(p, 65534, 65534);
    chmodSync(dest, 0o555);
    try {
      const r = cli(['backup', `maildir:${src}`, `maildir:${dest}`], user);
      assert.equal(r.code, 77, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(r.stderr.includes(dest), r.stderr);
      assert.match(r.stderr, /permission denied/);
      assert.doesNotMatch(r.stderr, /move it aside/);
      // The same for the change index itself, which every read of a Maildir writes.
      const list = cli(['mailbox', 'list', `maildir:${dest}`], user);
      assert.equal(list.code, 77, list.stderr);
      assert.match(list.stderr, new RegExp(`^mailferry: error: change index directory ${dest}: permission denied\n$`));
    } finally {
      chmodSync(dest, 0o755);
    }
  });
});
