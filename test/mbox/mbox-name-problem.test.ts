/**
 * mailboxNameProblem says, before anything is written, which mailboxes an mbox tree cannot
 * hold, and what to do; every name it accepts can be created and listed back under that name.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { parseLocation, type MboxLocation } from '../../src/config/location.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import { message, req } from '../contract/store-contract.js';

describe('mbox: names it cannot hold', () => {
  let dir: string;
  let s: MboxStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-mbox-names-'));
    s = MboxStore.open(parseLocation(`mbox:${join(dir, 'mail')}:INDEX=${join(dir, 'index')}`) as MboxLocation, { create: true, fsync: false, warn: () => {} });
  });
  after(async () => {
    await s?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const leaf = { hasChildren: false, messages: 3 };

  it('a mailbox with children: with mail or without, it would be a file that must be a directory', () => {
    const withMail = s.mailboxNameProblem(['Archive'], { hasChildren: true, messages: 4 });
    assert.match(withMail ?? '', /'Archive' holds 4 messages and has child mailboxes/);
    assert.match(withMail ?? '', /-x 'Archive'/);
    assert.match(withMail ?? '', /Maildir destination/);
    assert.match(s.mailboxNameProblem(['Archive', '2002'], { hasChildren: true, messages: 0 }) ?? '', /-x 'Archive\/2002'/);
    assert.equal(s.mailboxNameProblem(['Archive', '2002'], leaf), undefined);
    assert.equal(s.mailboxNameProblem(['INBOX'], { hasChildren: true, messages: 9 }), undefined, 'INBOX is its own file, its children live in ROOT/INBOX/');
  });

  it('levels a file name cannot spell, or that are taken by Dovecot and mailferry', () => {
    const cases: [string[], RegExp][] = [
      [['.'], /names a directory/],
      [['a', '..'], /names a directory/],
      [['a', ''], /empty level/],
      [['a/b'], /contains '\/'/],
      [['line\nbreak'], /control character/],
      [['bell\u0007'], /control character/],
      [['.hidden'], /starts with '\.'/],
      [['.imap'], /starts with '\.'/],
      [['.subscriptions'], /starts with '\.'/],
      [['Work', 'box.lock'], /'\.lock'/],
      [['x'.repeat(300)], /longer than a file name/],
    ];
    for (const [name, why] of cases) {
      const problem = s.mailboxNameProblem(name, leaf);
      assert.match(problem ?? '', why, JSON.stringify(name));
      assert.match(problem ?? '', new RegExp(`-x '${name.join('/').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`), JSON.stringify(name));
    }
  });

  it('property: every leaf name it accepts is created, filled and listed back under that name', async () => {
    const level = fc.stringMatching(/^[A-Za-z0-9 &._äöü€-]{1,12}$/);
    let made = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(level, { minLength: 1, maxLength: 3 }), async (parts) => {
        const name = [`p${made++}`, ...parts];
        const problem = s.mailboxNameProblem(name, leaf);
        const levelBad = parts.some((p) => p === '.' || p === '..' || p.startsWith('.') || p.endsWith('.lock'));
        assert.equal(problem !== undefined, levelBad, `${JSON.stringify(name)}: ${problem}`);
        if (problem) return;
        await s.createMailbox(name);
        await s.saveMessages(name, [req(message(name.join('/')))]);
        const listed = (await s.listMailboxes()).mailboxes.find((m) => m.name.join('\0') === name.join('\0'));
        assert.equal(listed?.messages, 1, JSON.stringify(name));
      }),
      { numRuns: 30 },
    );
  });
});
