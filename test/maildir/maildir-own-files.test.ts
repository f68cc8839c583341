/**
 * A Maildir backup touches only what is mail: folders that are not mailboxes survive a backup
 * that deletes mailboxes, a file whose name the uidlist cannot keep is skipped with a warning,
 * and a run killed mid-save leaves no temporary file behind after the next run.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, cliChild, deliver, messageFiles } from '../cli/cli-child.js';

describe('maildir: a backup touches only what is mail', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-own-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('dot-directories and project directories of a destination are not mailboxes, and a deleted mailbox keeps what is not mail', () => {
    const src = join(dir, 'src1');
    const dst = join(dir, 'dst1');
    deliver(src, 2, 'inbox');
    deliver(join(src, '.Old'), 1, 'old');
    assert.equal(cli(['backup', `maildir:${src}`, `maildir:${dst}`]).code, 0);
    // Things a user keeps beside mail, and a note inside a folder the next backup deletes.
    for (const d of ['.ssh', '.git/objects', '.notmuch', '.config/app']) mkdirSync(join(dst, d), { recursive: true });
    writeFileSync(join(dst, '.ssh', 'id_ed25519'), 'key\n');
    writeFileSync(join(dst, '.Old', 'notes.txt'), 'mine\n');
    rmSync(join(src, '.Old'), { recursive: true, force: true });
    const r = cli(['backup', '-v', `maildir:${src}`, `maildir:${dst}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /delete mailbox (ssh|git|notmuch|config)/);
    assert.equal(readFileSync(join(dst, '.ssh', 'id_ed25519'), 'utf8'), 'key\n');
    for (const d of ['.git/objects', '.notmuch', '.config/app']) assert.ok(existsSync(join(dst, d)), d);
    assert.equal(readFileSync(join(dst, '.Old', 'notes.txt'), 'utf8'), 'mine\n', 'the note survives its folder');
    assert.match(r.stderr, /Old.*kept/);
    assert.ok(!existsSync(join(dst, '.Old', 'cur')), 'the mail of the deleted folder is gone');
    assert.equal(messageFiles(dst).length, 2);
  });

  it('a home directory given as the destination is refused with exit 65, naming it and what it holds', () => {
    const src = join(dir, 'src2');
    const home = join(dir, 'home');
    deliver(src, 1, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    writeFileSync(join(home, '.bashrc'), '# mine\n');
    const r = cli(['backup', `maildir:${src}`, `maildir:${home}`]);
    assert.equal(r.code, 65, r.stderr);
    assert.match(r.stderr, new RegExp(`${home}.*not a Maildir.*\\.bashrc`));
    assert.deepEqual(readdirSync(home).sort(), ['.bashrc', '.ssh'], 'nothing was written into it');
  });

  it('a message file whose name holds a line break is skipped with a warning; the rest is copied and the run exits 2', () => {
    const src = join(dir, 'src3');
    const dst = join(dir, 'dst3');
    deliver(src, 3, 'lf');
    writeFileSync(join(src, 'cur', '1700000099.M1P1.bad\nname:2,S'), 'Subject: odd\n\nodd\n');
    for (let run = 0; run < 2; run++) {
      const r = cli(['backup', `maildir:${src}`, `maildir:${dst}`]);
      assert.equal(r.code, 2, `run ${run}: ${r.stderr}`);
      assert.match(r.stderr, /line break in a file name/);
      assert.equal(messageFiles(dst).length, 3);
    }
  });

  it('a folder name the destination layout cannot hold is skipped with a warning, before anything is written', () => {
    const src = join(dir, 'src4');
    const dst = join(dir, 'dst4');
    deliver(src, 1, 'ctl');
    deliver(join(src, '.Bad&AAo-name'), 1, 'ctl'); // "Bad\nname" in modified UTF-7
    deliver(join(src, '.Good'), 1, 'good');
    const r = cli(['backup', `maildir:${src}`, `maildir:${dst}:LAYOUT=fs`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /mailbox .*Bad.* not copied.*control characters/s);
    assert.ok(existsSync(join(dst, 'Good', 'cur')));
    assert.deepEqual(readdirSync(dst).filter((n) => n.startsWith('Bad')), []);
  });

  it('a backup killed mid-save leaves temporary files the next run removes, and only its own', async () => {
    const src = join(dir, 'src5');
    const dst = join(dir, 'dst5');
    deliver(src, 300, 'kill');
    mkdirSync(join(dst, 'tmp'), { recursive: true });
    mkdirSync(join(dst, 'cur'));
    mkdirSync(join(dst, 'new'));
    // A delivery in progress by another program: never ours to remove.
    writeFileSync(join(dst, 'tmp', '1700000000.M1P99999.otherhost'), 'Subject: arriving\n\n');
    const run = cliChild(['backup', `maildir:${src}`, `maildir:${dst}`], { env: { ...process.env, MAILFERRY_FAILPOINT: 'save-before-rename:1' } });
    await run.exited;
    const left = readdirSync(join(dst, 'tmp')).filter((n) => n.endsWith('.mailferry-tmp'));
    assert.ok(left.length > 0, `the killed run left temporary files (${run.output.stderr})`);
    const r = cli(['backup', `maildir:${src}`, `maildir:${dst}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(join(dst, 'tmp')), ['1700000000.M1P99999.otherhost']);
    assert.equal(messageFiles(dst).length, 300);
  });
});
