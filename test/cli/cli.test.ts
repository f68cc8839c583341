/**
 * The inspection commands as a user runs them: the built CLI in a child process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { message, req } from '../contract/store-contract.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('cli: mailbox list/status and fetch', () => {
  let dir: string;
  let loc: string;
  const body = message('cli', 'the body\n');
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-cli-'));
    loc = `maildir:${join(dir, 'Maildir')}`;
    const store = MaildirStore.open(parseMaildirLocation(loc), { create: true, fsync: false, warn: () => {} });
    await store.createMailbox(['Sent Items']);
    await store.createMailbox(['Work', 'Q3']);
    await store.saveMessages(['INBOX'], [req(body, { flags: ['\\Seen'], keywords: ['$Label1'] }), req(message('two'))]);
    await store.saveMessages(['Work', 'Q3'], [req(message('three'))]);
    await store.close();
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('mailbox list prints every mailbox with the layout separator', () => {
    const r = run('mailbox', 'list', loc);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['INBOX', 'Sent Items', 'Work.Q3']);
  });

  it('mailbox status prints doveadm-style fields for every mailbox', () => {
    const r = run('mailbox', 'status', loc);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    const inbox = lines.find((l) => l.startsWith('mailbox=INBOX '))!;
    assert.match(inbox, /^mailbox=INBOX messages=2 uidvalidity=\d+ uidnext=3 highestmodseq=\d+ guid=[0-9a-f]{32}$/);
    assert.ok(lines.some((l) => l.startsWith('mailbox="Sent Items" messages=0 ')));
  });

  it('mailbox status --json for named mailboxes', () => {
    const r = run('mailbox', 'status', '--json', loc, 'Work.Q3', 'inbox');
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { mailbox: string; messages: number; uidnext: number }[];
    assert.deepEqual(rows.map((x) => [x.mailbox, x.messages, x.uidnext]), [['Work.Q3', 1, 2], ['INBOX', 2, 3]]);
  });

  it('fetch lists uid, guid and flags; --body prints the exact message', () => {
    const r = run('fetch', loc, 'INBOX');
    assert.equal(r.code, 0, r.stderr);
    const [first] = r.stdout.trim().split('\n');
    assert.match(first!, /^uid=1 guid=\S+ flags="\\Seen \$Label1" size=\d+ modseq=\d+$/);
    const b = spawnSync(process.execPath, [CLI, 'fetch', loc, 'INBOX', '--body', '1']);
    assert.equal(b.status, 0);
    assert.ok(Buffer.from(b.stdout).equals(body));
  });

  it('fetch --json gives received dates and keywords', () => {
    const r = run('fetch', '--json', loc, 'INBOX');
    const rows = JSON.parse(r.stdout) as { uid: number; keywords: string[]; receivedDate: string }[];
    assert.deepEqual(rows[0]!.keywords, ['$Label1']);
    assert.equal(rows[0]!.receivedDate, '2024-01-01T10:00:00.000Z');
  });

  it('LAYOUT=fs shows / as the separator', async () => {
    const fsLoc = `maildir:${join(dir, 'fs')}:LAYOUT=fs`;
    const store = MaildirStore.open(parseMaildirLocation(fsLoc), { create: true, fsync: false, warn: () => {} });
    await store.createMailbox(['a.b', 'c']);
    await store.close();
    const r = run('mailbox', 'list', fsLoc);
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['INBOX', 'a.b/c']);
  });

  describe('bad input: one line naming the problem, documented exit code, nothing changed', () => {
    const cases: [string, () => string[], number, RegExp][] = [
      ['a missing Maildir', () => ['mailbox', 'status', `maildir:${join(dir, 'nope')}`], 65, /nope.*no such file/],
      ['an unknown mailbox', () => ['mailbox', 'status', loc, 'Nope'], 65, /mailbox 'Nope' does not exist/],
      ['an unknown UID', () => ['fetch', loc, 'INBOX', '--body', '99'], 65, /UID 99/],
      ['a bad UID', () => ['fetch', loc, 'INBOX', '--body', 'x'], 64, /invalid --body 'x'/],
      ['an unknown location type', () => ['mailbox', 'list', 'mdbox:/tmp/x'], 64, /unsupported mail location type 'mdbox'/],
      ['a location without a type', () => ['mailbox', 'list', '/tmp/x'], 64, /invalid mail location/],
      ['an unknown location parameter', () => ['mailbox', 'list', `${loc}:FOO=1`], 64, /unknown parameter 'FOO'/],
      ['an unknown option', () => ['mailbox', 'status', '--frobnicate', loc], 64, /unknown option '--frobnicate'/],
      ['an unknown command', () => ['frobnicate'], 64, /unknown command 'frobnicate'/],
      ['an unknown -o setting', () => ['-o', 'foo=1', 'mailbox', 'list', loc], 64, /unknown setting 'foo'/],
      ['a bad -o value', () => ['-o', 'mail_fsync=sometimes', 'mailbox', 'list', loc], 64, /mail_fsync=sometimes/],
      ['a Maildir++ name with an empty level', () => ['mailbox', 'status', loc, 'Work..Q3'], 64, /empty hierarchy level/],
    ];
    for (const [what, args, code, pattern] of cases) {
      it(what, () => {
        const before = run('mailbox', 'status', loc).stdout;
        const r = run(...args());
        assert.equal(r.code, code, `exit code for ${what}: ${r.stderr}`);
        assert.match(r.stderr, pattern);
        assert.equal(r.stdout, '');
        assert.equal(run('mailbox', 'status', loc).stdout, before, 'nothing changed');
      });
    }

    it('an unreadable Maildir gives exit 77 (permission)', { skip: process.getuid?.() === 0 ? 'root reads everything' : false }, () => {
      const locked = join(dir, 'locked');
      mkdirSync(join(locked, 'cur'), { recursive: true });
      chmodSync(locked, 0);
      const r = run('mailbox', 'list', `maildir:${locked}`);
      chmodSync(locked, 0o755);
      assert.equal(r.code, 77);
    });

    it('a corrupt change index gives exit 65 naming the file', async () => {
      const bad = join(dir, 'badindex');
      mkdirSync(join(bad, 'cur'), { recursive: true });
      writeFileSync(join(bad, 'mailferry.index.sqlite'), Buffer.alloc(4096, 7));
      const r = run('mailbox', 'list', `maildir:${bad}`);
      assert.equal(r.code, 65, r.stderr);
      assert.match(r.stderr, /mailferry\.index\.sqlite/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    });
  });

  it('--help and --version exit 0', () => {
    assert.equal(run('--help').code, 0);
    assert.match(run('--version').stdout, /^\d+\.\d+\.\d+/);
    assert.match(run('mailbox', 'status', '--help').stdout, /highestmodseq/);
  });
});
