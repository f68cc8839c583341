/**
 * Dovecot as the oracle for mbox: the SpamAssassin corpus goes Maildir -> mbox -> Maildir with
 * the CLI byte for byte, and doveadm reading the mbox shows mailferry's UIDs, UIDVALIDITY,
 * flags and keywords; an mbox Dovecot wrote reads back with Dovecot's; two-way sync with a
 * Dovecot-written mbox propagates both ways and then settles.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseLocation, parseMaildirLocation, type MboxLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { MboxStore } from '../../src/storage/mbox/mbox-store.js';
import type { MailStore, SystemFlag } from '../../src/storage/store.js';
import { readAll, req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { doveadmFetch, doveadmMailboxStatus, grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function withStore<T>(location: string, fn: (s: MailStore) => Promise<T>): Promise<T> {
  const loc = parseLocation(location);
  const s =
    loc.kind === 'mbox'
      ? MboxStore.open(loc, { create: true, fsync: false, warn: () => {} })
      : MaildirStore.open(parseMaildirLocation(location), { create: true, fsync: false, warn: () => {} });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Per mailbox name: `uid flags+keywords` lines, as both mailferry and doveadm can print them. */
async function uidsAndFlags(s: MailStore, name: string[]): Promise<string[]> {
  const { messages } = await s.getMessages(name);
  return messages.map((m) => `${m.uid} ${[...m.flags, ...m.keywords].sort().join(' ')}`);
}

describe('mbox interop with Dovecot', { timeout: 600_000 }, () => {
  let d: Dovecot;
  let scratch: string;
  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: false });
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-mbox-interop-'));
  });
  after(async () => {
    await d?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('the corpus goes Maildir -> mbox -> Maildir with the CLI byte for byte, and doveadm agrees on the mbox', async () => {
    const mail = corpusMessages();
    const a = `maildir:${join(scratch, 'a')}`;
    const mboxRoot = join(scratch, 'b', 'mail');
    const b = `mbox:${mboxRoot}`;
    const c = `maildir:${join(scratch, 'c')}`;
    const folders = [['INBOX'], ['Archive'], ['Work', 'Q3'], ['Entwürfe']];
    const flagSets: SystemFlag[][] = [[], ['\\Seen'], ['\\Seen', '\\Answered'], ['\\Flagged', '\\Draft'], ['\\Deleted', '\\Seen']];
    const expected = new Map<string, { body: Buffer; flags: string; received: number }>();
    await withStore(a, async (s) => {
      for (const f of folders.slice(1)) await s.createMailbox(f);
      for (const [fi, folder] of folders.entries()) {
        const mine = mail.filter((_, i) => i % folders.length === fi);
        const saved = await s.saveMessages(
          folder,
          mine.map((m, i) =>
            req(m, {
              flags: flagSets[i % flagSets.length]!,
              keywords: i % 7 === 0 ? ['$Junk', 'project-x'] : i % 11 === 0 ? ['$Label1'] : [],
              receivedDate: Date.UTC(2003, 0, 1) + i * 61_000,
            }),
          ),
        );
        saved.forEach((sv, i) => {
          const flags = [...flagSets[i % flagSets.length]!, ...(i % 7 === 0 ? ['$Junk', 'project-x'] : i % 11 === 0 ? ['$Label1'] : [])].sort().join(' ');
          expected.set(`${folder.join('/')} ${sv.guid}`, { body: mine[i]!, flags, received: Date.UTC(2003, 0, 1) + i * 61_000 });
        });
      }
    });
    let r = cli('backup', a, b);
    assert.equal(r.code, 0, r.stderr);
    r = cli('backup', b, c);
    assert.equal(r.code, 0, r.stderr);
    let count = 0;
    await withStore(c, async (s) => {
      for (const folder of folders) {
        const { messages } = await s.getMessages(folder);
        for (const m of messages) {
          const want = expected.get(`${folder.join('/')} ${m.guid}`);
          assert.ok(want, `${folder.join('/')} ${m.guid} came back with its GUID`);
          assert.equal([...m.flags, ...m.keywords].sort().join(' '), want.flags, `flags of ${m.guid}`);
          assert.equal(m.receivedDate, want.received, `received date of ${m.guid}`);
          assert.ok((await readAll(await s.openMessage(folder, m.uid))).equals(want.body), `${m.guid} is byte-identical`);
          count++;
        }
      }
    });
    assert.equal(count, mail.length);

    // Dovecot reads the mbox mailferry wrote with mailferry's UIDs, UIDVALIDITY and flags.
    mkdirSync(join(scratch, 'b', 'dovecot-index'));
    await grantDovecotAccess(join(scratch, 'b'));
    const before = createHash('md5').update(readFileSync(join(mboxRoot, 'inbox'))).digest('hex');
    const location = `mbox:${mboxRoot}:INDEX=${join(scratch, 'b', 'dovecot-index')}`;
    await withStore(`mbox:${mboxRoot}:INDEX=${join(scratch, 'b-reader')}`, async (s) => {
      for (const folder of folders) {
        const shown = folder.join('/');
        const theirs = await doveadmMailboxStatus(d, 'alice', location, shown);
        const ours = (await s.mailboxStatus(folder))!;
        assert.deepEqual(
          { messages: ours.messages, uidvalidity: ours.uidValidity, uidnext: ours.uidNext },
          { messages: theirs.messages, uidvalidity: theirs.uidvalidity, uidnext: theirs.uidnext },
          `status of ${shown}`,
        );
        const fetched = await doveadmFetch(d, 'alice', location, shown);
        assert.deepEqual(fetched.map((m) => `${m.uid} ${[...m.flags].sort().join(' ')}`), await uidsAndFlags(s, folder), `messages of ${shown}`);
      }
    });
    const afterRead = createHash('md5').update(readFileSync(join(mboxRoot, 'inbox'))).digest('hex');
    assert.equal(afterRead, before, 'Dovecot found nothing to rewrite in the mbox');
  });
});
