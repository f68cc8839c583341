/**
 * The "only what is its own" part of the store contract, for every store that keeps mail in
 * files: entries that are not mail are never listed, changed or deleted; links are never
 * followed out of the tree; a FIFO is refused without blocking. Each store says through an
 * {@link OwnFilesFixture} how such entries look in its layout.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { MailStore } from '../../src/storage/store.js';
import { MailferryError } from '../../src/model/errors.js';
import { message, readAll, req } from './store-contract.js';

export interface OwnFilesFixture {
  /** Plants entries that are not mail where the store keeps its mailboxes; returns their paths. */
  plantForeign(): string[];
  /** Makes mailbox `name` a symbolic link to `outside` (a directory, or a file for file-per-mailbox stores). */
  plantMailboxLink(name: string, outside: string): void;
  /** Whether `plantMailboxLink` wants a directory or a file as its target. */
  linkTarget: 'directory' | 'file';
  /** Puts a FIFO where mailbox `name` would be found. */
  plantFifoMailbox(name: string): void;
  /** For stores keeping one file per message: INBOX gets a link to `outside` and a FIFO among its messages. */
  plantInInbox?(outside: string): void;
}

export interface OwnFilesTarget {
  name: string;
  open(): Promise<{ store: MailStore; files: OwnFilesFixture; cleanup(): Promise<void> }>;
}

/** Every path under `dir` with a hash of its content (or its link target): what must not change. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isSymbolicLink()) out.set(p, `link:${readlinkSync(p)}`);
      else if (e.isDirectory()) {
        out.set(p, 'dir');
        walk(p);
      } else if (e.isFile()) out.set(p, createHash('sha256').update(readFileSync(p)).digest('hex'));
      else out.set(p, 'special');
    }
  };
  walk(dir);
  return out;
}

/** The planted paths and, for directories, everything under them. */
function stateOf(paths: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of paths) {
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) out.set(p, 'missing');
    else if (st.isDirectory()) {
      out.set(p, 'dir');
      for (const [k, v] of snapshot(p)) out.set(k, v);
    } else out.set(p, st.isFile() ? createHash('sha256').update(readFileSync(p)).digest('hex') : 'other');
  }
  return out;
}

function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

export { mkfifo };

/** Rejects or resolves, but must do so: a blocking open of a FIFO never would. */
async function settles<T>(p: Promise<T>): Promise<T | MailferryError> {
  try {
    return await p;
  } catch (err) {
    assert.ok(err instanceof MailferryError, `a refusal is a MailferryError, got ${String(err)}`);
    return err;
  }
}

const SECRET = 'root:$6$secret-hash:19000:0:99999:7:::\n';

export function runOwnFilesContract(target: OwnFilesTarget): void {
  const test = (title: string, fn: (s: MailStore, files: OwnFilesFixture, outside: string) => Promise<void>) =>
    it(title, async () => {
      const { store, files, cleanup } = await target.open();
      const outside = mkdtempSync(join(tmpdir(), 'mailferry-outside-'));
      try {
        await fn(store, files, outside);
      } finally {
        await store.close();
        await cleanup();
        rmSync(outside, { recursive: true, force: true });
      }
    });

  describe(`store contract, only what is its own: ${target.name}`, () => {
    test('entries that are not mail are never listed, changed or deleted', async (s, files) => {
      const planted = files.plantForeign();
      const before = stateOf(planted);
      const names = (await s.listMailboxes()).mailboxes.map((m) => m.name.join('/'));
      assert.deepEqual(names, ['INBOX'], 'nothing but INBOX is a mailbox');
      await s.createMailbox(['Work']);
      await s.saveMessages(['Work'], [req(message('work'))]);
      await s.deleteMailbox(['Work']);
      assert.deepEqual(stateOf(planted), before, 'every entry that is not mail is untouched');
    });

    test('a mailbox that is a link out of the tree is neither read nor written', async (s, files, outside) => {
      const linked = files.linkTarget === 'directory' ? outside : join(outside, 'mbox');
      if (files.linkTarget === 'directory') {
        execFileSync('mkdir', ['-p', join(outside, 'cur'), join(outside, 'new'), join(outside, 'tmp')]);
        execFileSync('sh', ['-c', `printf '%s' "$1" > "$2"`, 'sh', `Subject: secret\n\n${SECRET}`, join(outside, 'cur', '1.M1P1.host:2,')]);
      } else {
        execFileSync('sh', ['-c', `printf '%s' "$1" > "$2"`, 'sh', `From a@b Mon Jan  1 00:00:00 2024\nSubject: secret\n\n${SECRET}`, linked]);
      }
      files.plantMailboxLink('Evil', linked);
      const before = snapshot(outside);
      const names = (await s.listMailboxes()).mailboxes.map((m) => m.name.join('/'));
      assert.ok(!names.includes('Evil'), 'a link is not listed as a mailbox');
      const got = await settles(s.getMessages(['Evil']));
      assert.ok(got instanceof MailferryError, 'asked for by name, it is refused');
      await settles(s.createMailbox(['Evil']).then(() => s.saveMessages(['Evil'], [req(message('into the link'))])));
      assert.deepEqual(snapshot(outside), before, 'nothing outside the tree changed');
    });

    test('a FIFO where a mailbox would be is refused without blocking', async (s, files) => {
      files.plantFifoMailbox('Pipe');
      const names = (await s.listMailboxes()).mailboxes.map((m) => m.name.join('/'));
      assert.ok(!names.includes('Pipe'));
      assert.ok((await settles(s.getMessages(['Pipe']))) instanceof MailferryError);
    });

    test('message entries that are links or FIFOs are left out and counted, never read', async (s, files, outside) => {
      if (!files.plantInInbox) return;
      await s.saveMessages(['INBOX'], [req(message('real'))]);
      const secret = join(outside, 'shadow');
      execFileSync('sh', ['-c', `printf '%s' "$1" > "$2"`, 'sh', SECRET, secret]);
      files.plantInInbox(secret);
      const got = await s.getMessages(['INBOX']);
      assert.equal(got.messages.length, 1, 'only the real message');
      assert.equal(got.skipped, 2, 'the link and the FIFO are counted as left out');
      for (const m of got.messages) assert.ok(!(await readAll(await s.openMessage(['INBOX'], m.uid))).toString().includes('secret-hash'));
      assert.ok(lstatSync(secret).isFile());
    });
  });
}
