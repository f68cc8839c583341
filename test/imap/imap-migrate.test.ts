/**
 * Migrations through the built CLI against a real Dovecot: Maildir -> IMAP, IMAP -> Maildir,
 * IMAP -> IMAP, with the SpamAssassin corpus in a dozen folders (spaces, '&', non-ASCII,
 * hierarchy), flags, keywords and received dates.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { corpusMessages } from '../support/corpus.js';
import { doveadmFetch, doveadmMailboxList, startDovecot, type Dovecot } from '../support/dovecot.js';
import { cli, lfOnly, passwordFile, seed, snapshot } from './imap-helpers.js';

describe('IMAP migrations (CLI)', { timeout: 120_000 }, () => {
  let d: Dovecot;
  let dir: string;
  const mail = lfOnly(corpusMessages(1200)).filter((_, i) => i % 2 === 0);
  const imap = (user: string) => `imap://${user}@127.0.0.1:${d.port}/?tls=none&state=${join(dir, `state-${user}`)}`;
  let pw: Record<string, string>;
  before(async () => {
    d = await startDovecot({ users: ['alice', 'bob'], imap: true });
    dir = await mkdtemp(join(tmpdir(), 'mailferry-imap-migrate-'));
    pw = { alice: passwordFile(dir, 'alice', d.users.alice!), bob: passwordFile(dir, 'bob', d.users.bob!) };
  });
  after(async () => {
    await d?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('Maildir -> IMAP -> Maildir and IMAP -> IMAP keep every byte, flag, keyword, date and folder', async () => {
    const src = `maildir:${join(dir, 'src')}`;
    await seed(src, mail);
    const want = await snapshot(src, { uids: true });

    let r = cli(pw.alice, 'backup', '--json', src, imap('alice'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).saved, mail.length);
    process.stderr.write(`# Maildir -> IMAP, ${mail.length} messages: ${r.ms} ms\n`);
    // Dovecot itself sees the folders and the flags.
    const listed = await doveadmMailboxList(d, 'alice');
    for (const f of ['INBOX', 'Sent Items', 'A & B', 'Entwürfe', '日本語', 'Work.Q3.2024', 'Lists.dev', 'emoji 📬']) assert.ok(listed.includes(f), `${f} on the server (${listed.join(', ')})`);
    const work = await doveadmFetch(d, 'alice', undefined, 'Work.Q3');
    assert.equal(work.length, want['Work/Q3']!.length);
    assert.ok(work.some((m) => m.flags.includes('$Label1')), 'keywords reach the server');

    r = cli(pw.alice, 'backup', '--json', src, imap('alice'));
    assert.equal(r.code, 0, r.stderr);
    const again = JSON.parse(r.stdout);
    assert.deepEqual([again.saved, again.flagUpdates, again.expunged], [0, 0, 0], 'a second run changes nothing');
    assert.equal(again.skipped, again.mailboxes, `the backup's state lets the second run skip every mailbox (${r.stdout})`);
    // Created folders are not left subscribed behind the source's back, and INBOX's
    // subscription is what the server says, so nothing is (un)subscribed again.
    assert.equal(again.treeActions, 0, `the mailbox tree is unchanged (${r.stdout})`);
    process.stderr.write(`# Maildir -> IMAP no-op run: ${r.ms} ms\n`);

    const dst = `maildir:${join(dir, 'dst')}`;
    r = cli(pw.alice, 'backup', '--json', imap('alice'), dst);
    assert.equal(r.code, 0, r.stderr);
    process.stderr.write(`# IMAP -> Maildir, ${mail.length} messages: ${r.ms} ms\n`);
    assert.deepEqual(await snapshot(dst, { uids: true }), want);
    r = cli(pw.alice, 'backup', '--json', imap('alice'), dst);
    assert.equal(r.code, 0, r.stderr);
    const noop = JSON.parse(r.stdout);
    assert.deepEqual([noop.saved, noop.flagUpdates, noop.skipped], [0, 0, noop.mailboxes], `nothing to do, every mailbox skipped (${r.stdout})`);

    // IMAP -> IMAP between two accounts with different passwords (passfile= per location).
    const bobLoc = `${imap('bob')}&passfile=${pw.bob}`;
    r = cli(pw.alice, 'backup', '--json', imap('alice'), bobLoc);
    assert.equal(r.code, 0, r.stderr);
    process.stderr.write(`# IMAP -> IMAP, ${mail.length} messages: ${r.ms} ms\n`);
    assert.deepEqual(await snapshot(bobLoc, { uids: true }), want);
    assert.deepEqual((await doveadmMailboxList(d, 'bob')), listed);
  });
});
