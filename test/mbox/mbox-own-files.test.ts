/**
 * The mbox store touches only what is its own: files that are not mbox files, hidden entries,
 * symbolic links and FIFOs under the root are never listed, read, written or deleted as
 * mailboxes; a link or FIFO asked for by name is refused at once with an error naming it; a
 * destination holding someone else's files is refused unless forced.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MailferryError } from '../../src/model/errors.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { message, req } from '../contract/store-contract.js';

const MBOX = 'From a@b Mon Jan  1 10:00:00 2024\nMessage-ID: <m@x>\nSubject: m\n\nbody\n\n';
const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n';

const refused = (path: string, what: RegExp) => (e: unknown) =>
  e instanceof MailferryError && e.exitCode === 65 && e.message.includes(path) && what.test(e.message);

describe('mbox: only what is its own', () => {
  let dir: string;
  let root: string;
  let outside: string;
  let warnings: string[];
  const open = (extra = '', options: { create?: boolean; force?: boolean } = { create: true }) =>
    MboxStore.open(parseLocation(`mbox:${root}${extra}:INDEX=${join(dir, 'index')}`) as MboxLocation, { fsync: false, warn: (m) => warnings.push(m), ...options });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-own-'));
    root = join(dir, 'mail');
    outside = join(dir, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'Stolen'), MBOX);
    warnings = [];
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** A tree with one real mailbox and one of each thing that is not one. */
  function hostileTree(): void {
    mkdirSync(join(root, 'Work'), { recursive: true });
    writeFileSync(join(root, 'Work', 'Q3'), MBOX);
    writeFileSync(join(root, 'notes.txt'), 'shopping list\n');
    mkdirSync(join(root, '.ssh'));
    writeFileSync(join(root, '.ssh', 'id_rsa'), KEY);
    mkdirSync(join(root, '.git'));
    writeFileSync(join(root, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    symlinkSync(outside, join(root, 'Evil'));
    symlinkSync(join(outside, 'Stolen'), join(root, 'Link'));
    symlinkSync('.', join(root, 'loop'));
    execFileSync('mkfifo', [join(root, 'Pipe')]);
  }

  /** Every entry under `p` (links not followed) with its content, to prove nothing changed. */
  function snapshot(p: string): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const full = join(d, e.name);
        if (e.isDirectory()) walk(full);
        else out[full] = e.isFile() ? readFileSync(full, 'latin1') : e.isSymbolicLink() ? 'link' : 'special';
      }
    };
    walk(p);
    return out;
  }

  it('lists only mbox files, warns once about each other entry, and changes none of them', async () => {
    hostileTree();
    const before = { ...snapshot(root), ...snapshot(outside) };
    const s = open('', { create: false });
    try {
      const first = await s.listMailboxes();
      await s.listMailboxes();
      assert.deepEqual(first.mailboxes.map((m) => m.name.join('/')).sort(), ['INBOX', 'Work/Q3']);
      for (const name of ['notes.txt', '.ssh', '.git', 'Evil', 'Link', 'loop', 'Pipe']) {
        const path = join(root, name);
        assert.equal(warnings.filter((w) => w.includes(`${path} `)).length, 1, `one warning names ${path}:\n${warnings.join('\n')}`);
      }
      assert.ok(warnings.some((w) => w.includes(join(root, 'Evil')) && /symbolic link/.test(w)));
      assert.ok(warnings.some((w) => w.includes(join(root, 'Pipe')) && /FIFO/.test(w)));
    } finally {
      await s.close();
    }
    const after = { ...snapshot(root), ...snapshot(outside) };
    delete after[join(root, 'inbox')];
    assert.deepEqual(after, before);
  });

  it('refuses by name a link, a FIFO and a file that is not an mbox, writing nothing', { timeout: 20_000 }, async () => {
    hostileTree();
    const before = { ...snapshot(root), ...snapshot(outside) };
    const s = open('', { create: false });
    try {
      await assert.rejects(s.getMessages(['Evil', 'Stolen']), refused(join(root, 'Evil'), /symbolic link/));
      await assert.rejects(s.getMessages(['Link']), refused(join(root, 'Link'), /symbolic link/));
      await assert.rejects(s.getMessages(['Pipe']), refused(join(root, 'Pipe'), /not a regular file/));
      await assert.rejects(s.saveMessages(['Pipe'], [req(message('x'))]), refused(join(root, 'Pipe'), /not a regular file/));
      await assert.rejects(s.saveMessages(['notes.txt'], [req(message('x'))]), refused(join(root, 'notes.txt'), /not an mbox file/));
      await assert.rejects(s.expunge(['notes.txt'], [1]), refused(join(root, 'notes.txt'), /not an mbox file/));
      await assert.rejects(s.deleteMailbox(['notes.txt']), refused(join(root, 'notes.txt'), /not an mbox file/));
      await assert.rejects(s.createMailbox(['notes.txt']), (e: unknown) => e instanceof MailferryError && e.kind === 'exists');
      await assert.rejects(s.createMailbox(['Evil', 'New']), refused(join(root, 'Evil'), /symbolic link/));
      await assert.rejects(s.renameMailbox(['Work', 'Q3'], ['Evil', 'Q3']), refused(join(root, 'Evil'), /symbolic link/));
      await assert.rejects(s.deleteMailbox(['Link']), refused(join(root, 'Link'), /symbolic link/));
      assert.equal(await s.mailboxStatus(['notes.txt']).catch((e: unknown) => e instanceof MailferryError && e.exitCode), 65);
    } finally {
      await s.close();
    }
    assert.deepEqual({ ...snapshot(root), ...snapshot(outside) }, before);
  });

  it('a FIFO as the INBOX spool is refused at once with exit 65', { timeout: 20_000 }, async () => {
    mkdirSync(root);
    const spool = join(dir, 'spool');
    execFileSync('mkfifo', [spool]);
    const s = open(`:INBOX=${spool}`);
    try {
      await assert.rejects(s.listMailboxes(), refused(spool, /not a regular file/));
      await assert.rejects(s.saveMessages(['INBOX'], [req(message('x'))]), refused(spool, /not a regular file/));
    } finally {
      await s.close();
    }
    assert.ok(lstatSync(spool).isFIFO());
  });

  it('a symbolic link as the INBOX file is refused, not written through', async () => {
    mkdirSync(root);
    symlinkSync(join(outside, 'Stolen'), join(root, 'inbox'));
    const s = open();
    try {
      await assert.rejects(s.saveMessages(['INBOX'], [req(message('x'))]), refused(join(root, 'inbox'), /symbolic link/));
    } finally {
      await s.close();
    }
    assert.equal(readFileSync(join(outside, 'Stolen'), 'latin1'), MBOX);
  });

  it('a rewrite never writes through a link planted at its temp file name', async () => {
    const s = open();
    try {
      const saved = await s.saveMessages(['INBOX'], [req(message('one')), req(message('two'))]);
      symlinkSync(join(outside, 'Stolen'), join(root, `.inbox.${process.pid}.mailferry-tmp`));
      await s.expunge(['INBOX'], [saved[0]!.uid]);
      assert.deepEqual((await s.getMessages(['INBOX'])).messages.map((m) => m.uid), [saved[1]!.uid]);
    } finally {
      await s.close();
    }
    assert.equal(readFileSync(join(outside, 'Stolen'), 'latin1'), MBOX);
    assert.ok(!existsSync(join(root, `.inbox.${process.pid}.mailferry-tmp`)));
  });

  it('deleting a mailbox removes its file and the directories it leaves empty; one holding other files stays, with a warning', async () => {
    mkdirSync(join(root, 'Old', 'Deep'), { recursive: true });
    writeFileSync(join(root, 'Old', 'Deep', 'Box'), MBOX);
    mkdirSync(join(root, 'Projects'));
    writeFileSync(join(root, 'Projects', 'Box'), MBOX);
    writeFileSync(join(root, 'Projects', 'main.c'), 'int main;\n');
    const s = open('', { create: false });
    try {
      await s.deleteMailbox(['Old', 'Deep', 'Box']);
      await s.deleteMailbox(['Projects', 'Box']);
    } finally {
      await s.close();
    }
    assert.ok(!existsSync(join(root, 'Old')), 'the emptied directories are gone');
    assert.equal(readFileSync(join(root, 'Projects', 'main.c'), 'latin1'), 'int main;\n');
    assert.ok(!existsSync(join(root, 'Projects', 'Box')));
    assert.ok(warnings.some((w) => w.includes(join(root, 'Projects')) && w.includes('main.c')), warnings.join('\n'));
  });

  describe('a destination', () => {
    it('that holds files but no mbox is refused with exit 65 naming it and its first foreign entry', () => {
      mkdirSync(join(root, '.ssh'), { recursive: true });
      writeFileSync(join(root, '.ssh', 'id_rsa'), KEY);
      writeFileSync(join(root, 'notes.txt'), 'hello\n');
      assert.throws(() => open(), refused(root, new RegExp(`${join(root, '.ssh').replace(/[.]/g, '\\.')}.*--force`)));
      const forced = open('', { create: true, force: true });
      forced.close();
      assert.equal(readFileSync(join(root, '.ssh', 'id_rsa'), 'latin1'), KEY);
    });

    it('that is missing, empty, holds only our own files, or is an mbox tree with other files is taken', () => {
      open().close();
      writeFileSync(join(root, '.subscriptions'), 'Work\n');
      mkdirSync(join(root, '.imap'));
      open().close();
      writeFileSync(join(root, 'notes.txt'), 'hello\n');
      mkdirSync(join(root, 'Lists'));
      writeFileSync(join(root, 'Lists', 'dev'), MBOX);
      open().close();
    });

    it('is checked only when opened to be written to: a source with other files opens', () => {
      mkdirSync(root);
      writeFileSync(join(root, 'notes.txt'), 'hello\n');
      open('', { create: false }).close();
    });
  });
});
