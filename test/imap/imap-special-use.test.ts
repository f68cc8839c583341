/**
 * Migration between two accounts whose servers name their special-use folders differently:
 * alice's Sent folder is "Sent Items", bob's is "Sent" (both \Sent, RFC 6154 SPECIAL-USE).
 * The mail lands in bob's own Sent folder; no second one appears; a second run does nothing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { doveadmFetch, doveadmMailboxList, startDovecot, type Dovecot } from '../support/dovecot.js';
import { message, req } from '../contract/store-contract.js';
import { cli, passwordFile, withStore } from './imap-helpers.js';

const ROLES = `namespace inbox {
  mailbox "Sent Items" {
    special_use = \\Sent
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox "Deleted Items" {
    special_use = \\Trash
  }
  mailbox Trash {
    special_use = \\Trash
  }
}
`;

describe('special-use folders named differently on two IMAP accounts', { timeout: 120_000 }, () => {
  let d: Dovecot;
  let dir: string;
  let pw: Record<string, string>;
  const imap = (user: string) => `imap://${user}@127.0.0.1:${d.port}/?tls=none&state=${join(dir, `state-${user}`)}`;
  before(async () => {
    d = await startDovecot({ users: ['alice', 'bob'], imap: true, extraConfig: ROLES });
    dir = await mkdtemp(join(tmpdir(), 'mailferry-imap-special-use-'));
    pw = { alice: passwordFile(dir, 'alice', d.users.alice!), bob: passwordFile(dir, 'bob', d.users.bob!) };
  });
  after(async () => {
    await d?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('IMAP -> IMAP: alice\'s "Sent Items" and "Deleted Items" fill bob\'s "Sent" and "Trash"', async () => {
    await withStore(imap('alice'), async (s) => {
      for (const name of ['Sent Items', 'Deleted Items', 'Work']) await s.createMailbox([name]);
      await s.saveMessages(['Sent Items'], [req(message('sent-1'), { flags: ['\\Seen'] }), req(message('sent-2'), { flags: ['\\Seen'] })]);
      await s.saveMessages(['Deleted Items'], [req(message('binned'))]);
      await s.saveMessages(['Work'], [req(message('work'))]);
    }, pw.alice);
    await withStore(imap('bob'), async (s) => {
      for (const name of ['Sent', 'Trash']) await s.createMailbox([name]);
      await s.saveMessages(['Sent'], [req(message('bob-sent'))]);
    }, pw.bob);

    // A two-way sync: bob keeps his own sent mail and gains alice's.
    const bob = `${imap('bob')}&passfile=${pw.bob}`;
    let r = cli(pw.alice, 'sync', '--json', imap('alice'), bob);
    assert.equal(r.code, 0, r.stderr);
    const bobFolders = await doveadmMailboxList(d, 'bob');
    assert.ok(!bobFolders.includes('Sent Items') && !bobFolders.includes('Deleted Items'), `no second Sent or Trash at bob (${bobFolders.join(', ')})`);
    const sent = await doveadmFetch(d, 'bob', undefined, 'Sent');
    assert.equal(sent.length, 3, 'bob\'s Sent holds his message and alice\'s two');
    assert.equal((await doveadmFetch(d, 'bob', undefined, 'Trash')).length, 1);
    assert.equal((await doveadmFetch(d, 'alice', undefined, 'Sent Items')).length, 3, 'alice gains bob\'s sent message under her own name');
    const aliceFolders = await doveadmMailboxList(d, 'alice');
    assert.ok(!aliceFolders.includes('Sent') && !aliceFolders.includes('Trash'), `alice keeps her names (${aliceFolders.join(', ')})`);

    r = cli(pw.alice, 'sync', '--json', '-f', imap('alice'), bob);
    assert.equal(r.code, 0, r.stderr);
    const again = JSON.parse(r.stdout);
    assert.deepEqual([again.saved, again.flagUpdates, again.expunged, again.treeActions], [0, 0, 0, 0], `a second run changes nothing (${r.stdout})`);
  });
});
