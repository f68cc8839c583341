/**
 * mbox layout and locking: names on disk, INBOX as a spool file, renames, the limits of a
 * file-per-mailbox tree, and the dotlock shared with Dovecot and Postfix.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MailferryError } from '../../src/model/errors.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { message, readAll, req } from '../contract/store-contract.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

describe('mbox: layout and locking', () => {
  let dir: string;
  let root: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-store-'));
    root = join(dir, 'mail');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const open = (extra = '', lockTimeoutSeconds = 30) =>
    MboxStore.open(parseLocation(`mbox:${root}${extra}`) as MboxLocation, { create: true, fsync: false, lockTimeoutSeconds, warn: () => {} });

  it('names are modified UTF-7 files in directories; subscriptions go to .subscriptions; the index stays hidden', async () => {
    const s = open();
    await s.createMailbox(['Entwürfe']);
    await s.createMailbox(['Work', 'Q3']);
    await s.setSubscribed(['Work', 'Q3'], true);
    assert.ok(existsSync(join(root, 'Entw&APw-rfe')));
    assert.ok(existsSync(join(root, 'Work', 'Q3')));
    assert.equal(readFileSync(join(root, '.subscriptions'), 'utf8'), 'V\t2\n\nWork\tQ3\n');
    // Dovecot would list anything under the root as a mailbox, hidden entries included.
    assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('.')), ['.subscriptions']);
    const names = (await s.listMailboxes()).mailboxes.map((m) => m.name.join('/')).sort();
    assert.deepEqual(names, ['Entwürfe', 'INBOX', 'Work/Q3']);
    await s.close();
  });

  it('an empty mailbox keeps its UIDVALIDITY and UIDNEXT in the pseudo message', async () => {
    let s = open();
    await s.createMailbox(['Empty'], { uidValidity: 4242 });
    await s.updateMailbox(['Empty'], { minUidNext: 77 });
    await s.close();
    assert.match(readFileSync(join(root, 'Empty'), 'latin1'), /^X-IMAP: 4242 0000000076 *$/m);
    s = open(`:INDEX=${join(dir, 'fresh-index')}`);
    const st = await s.mailboxStatus(['Empty']);
    assert.deepEqual([st?.uidValidity, st?.uidNext, st?.messages], [4242, 77, 0]);
    await s.close();
  });

  it('INBOX= puts INBOX in a spool file outside the root', async () => {
    const spool = join(dir, 'spool', 'alice');
    mkdirSync(join(dir, 'spool'));
    const s = open(`:INBOX=${spool}`);
    await s.saveMessages(['INBOX'], [req(message('spooled'))]);
    assert.match(readFileSync(spool, 'latin1'), /^From MAILER-DAEMON /);
    assert.ok(!existsSync(join(root, 'inbox')));
    assert.deepEqual((await s.listMailboxes()).mailboxes.map((m) => m.name.join('/')), ['INBOX']);
    await s.close();
  });

  it('a rename moves the file and keeps GUID, UIDs and messages; a mailbox cannot be created under a mailbox', async () => {
    const s = open();
    const st = await s.createMailbox(['Old']);
    const [saved] = await s.saveMessages(['Old'], [req(message('kept'))]);
    await s.renameMailbox(['Old'], ['Archive', '2024']);
    const list = await s.listMailboxes();
    const moved = list.mailboxes.find((m) => m.name.join('/') === 'Archive/2024');
    assert.equal(moved?.guid, st.guid);
    assert.ok(list.changes.some((c) => c.type === 'rename' && c.guid === st.guid && c.oldName.join('/') === 'Old'));
    assert.deepEqual(await readAll(await s.openMessage(['Archive', '2024'], saved!.uid)), message('kept'));
    await assert.rejects(s.createMailbox(['Archive', '2024', 'Child']), (e: unknown) => e instanceof MailferryError && e.kind === 'usage' && /cannot have children/.test(e.message));
    await s.close();
  });

  it('a held dotlock makes a write wait, then fail as a temporary failure naming the lock', async () => {
    const s = open('', 1);
    await s.saveMessages(['INBOX'], [req(message('first'))]);
    const holder = spawn('sleep', ['30']);
    const lock = join(root, 'inbox.lock');
    try {
      writeFileSync(lock, `${holder.pid}:${hostname()}`);
      const started = Date.now();
      await assert.rejects(s.saveMessages(['INBOX'], [req(message('second'))]), (e: unknown) => e instanceof MailferryError && e.kind === 'tempfail' && e.exitCode === 75 && e.message.includes(lock));
      assert.ok(Date.now() - started >= 1000, 'it waited');
    } finally {
      holder.kill();
      unlinkSync(lock);
    }
    await s.saveMessages(['INBOX'], [req(message('second'))]);
    assert.equal((await s.getMessages(['INBOX'])).messages.length, 2);
    await s.close();
  });

  it('the CLI waits -o lock_timeout (or -l) seconds on a held mbox dotlock, then exits 75 naming it', { skip: !existsSync(CLI) }, async () => {
    const s = open();
    await s.saveMessages(['INBOX'], [req(message('cli'))]);
    await s.close();
    const holder = spawn('sleep', ['30']);
    const lock = join(root, 'inbox.lock');
    try {
      writeFileSync(lock, `${holder.pid}:${hostname()}`);
      const r = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', '-o', 'lock_timeout=1', 'backup', `mbox:${root}`, `maildir:${join(dir, 'md')}`], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 75, r.stderr);
      assert.match(r.stderr, /inbox\.lock/);
      // dsync's -l bounds every lock wait of the run, the mail's own locks included.
      const started = Date.now();
      const l = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', '-o', 'lock_timeout=600', 'backup', '-l', '1', `mbox:${root}`, `maildir:${join(dir, 'md2')}`], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(l.status, 75, l.stderr);
      assert.match(l.stderr, /inbox\.lock/);
      assert.ok(Date.now() - started < 30_000, 'gave up after -l seconds, not lock_timeout');
    } finally {
      holder.kill();
      unlinkSync(lock);
    }
  });
});
