/**
 * `backup` and `sync` refuse two locations that overlap on disk (one inside the other, or one
 * place reached through a symlink), before anything is opened or created; and `--force`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, deliver, messageFiles } from './cli-child.js';

describe('cli: overlapping locations are refused with exit 64', () => {
  let dir: string;
  let src: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-overlap-'));
    src = join(dir, 'S');
    deliver(src, 3, 'overlap');
    deliver(join(src, 'inner'), 1, 'inner');
    symlinkSync(src, join(dir, 'link'));
    mkdirSync(join(dir, 'M'));
    writeFileSync(join(dir, 'M', 'inbox'), '');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const cases: [string, () => string[]][] = [
    ['a destination inside the source', () => ['backup', `maildir:${src}`, `maildir:${src}/.Backup`]],
    ['the source inside the destination', () => ['backup', `maildir:${src}/inner`, `maildir:${src}`]],
    ['the same directory through a symlink', () => ['sync', `maildir:${src}`, `maildir:${dir}/link`]],
    ['a destination not created yet, under a symlink into the source', () => ['backup', `maildir:${src}`, `maildir:${dir}/link/.New`]],
    ['the destination INBOX= inside the source', () => ['backup', `maildir:${src}`, `maildir:${dir}/D1:INBOX=${src}/.Inbox`]],
    ['the destination INDEX= inside the source', () => ['sync', `maildir:${src}`, `maildir:${dir}/D2:INDEX=${dir}/link/idx`]],
    ['an mbox destination inside a Maildir source', () => ['backup', `maildir:${src}`, `mbox:${src}/mail`]],
    ['a Maildir destination inside an mbox source', () => ['backup', `mbox:${dir}/M`, `maildir:${dir}/M/md`]],
    ['an mbox spool INBOX= inside the Maildir source', () => ['backup', `maildir:${src}`, `mbox:${dir}/M2:INBOX=${src}/spool`]],
    ['-R turning the same pair round', () => ['backup', '-R', `maildir:${src}/.Backup`, `maildir:${src}`]],
  ];
  for (const [what, args] of cases) {
    it(what, () => {
      const before = readdirSync(src).sort();
      const r = cli(args());
      assert.equal(r.code, 64, `${what}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^mailferry: error: /);
      // Both locations are named as the user wrote them.
      const [a, b] = args().filter((x) => /^(maildir|mbox):/.test(x));
      assert.ok(lines[0]!.includes(a!) && lines[0]!.includes(b!), lines[0]);
      assert.deepEqual(readdirSync(src).sort(), before, 'nothing created in the source (no index, no lock)');
      for (const never of ['D1', 'D2', 'M2']) assert.equal(existsSync(join(dir, never)), false);
      assert.equal(existsSync(join(dir, 'M', 'md')), false);
    });
  }

  it('siblings whose names share a prefix are not nested', () => {
    const r = cli(['backup', `maildir:${src}`, `maildir:${src}-copy`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(messageFiles(`${src}-copy`).length, 3);
  });
});

describe('cli: --force', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-force-'));
    deliver(join(dir, 'src'), 2, 'force');
    mkdirSync(join(dir, 'home', '.config'), { recursive: true });
    writeFileSync(join(dir, 'home', 'notes.txt'), 'not mail\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('a destination holding files that are not mail is refused without it and used with it', () => {
    for (const cmd of ['backup', 'sync']) {
      const r = cli([cmd, `maildir:${join(dir, 'src')}`, `maildir:${join(dir, 'home')}`]);
      assert.notEqual(r.code, 0, `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, /--force/);
    }
    const r = cli(['backup', '--force', `maildir:${join(dir, 'src')}`, `maildir:${join(dir, 'home')}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(messageFiles(join(dir, 'home')).length, 2);
    assert.ok(existsSync(join(dir, 'home', 'notes.txt')));
    assert.match(cli(['sync', '--help']).stdout, /--force/);
  });
});
