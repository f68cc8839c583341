/**
 * A saved message's GUID becomes its file's name only when no line of the uidlist names it yet:
 * a second copy of a GUID, in a later save or of a file another program wrote, gets a name of
 * its own and carries the GUID in its line, and doveadm reads both copies with that GUID.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { doveadmFetch, grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';

const INBOX = ['INBOX'];

function names(root: string): string[] {
  return readFileSync(join(root, 'dovecot-uidlist'), 'utf8').split('\n').slice(1, -1).map((l) => l.slice(l.indexOf(' :') + 2));
}

describe('GUIDs as file names', { timeout: 120_000 }, () => {
  let d: Dovecot;
  let scratch: string;
  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: false });
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-guid-names-'));
  });
  after(async () => {
    await d?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('a GUID a file of the mailbox is already named by, ours or Dovecot\'s, is kept in the line, not in a second file of that name', async () => {
    const home = join(scratch, 'home');
    const root = join(home, 'Maildir');
    const location = `maildir:${root}`;
    const mail = corpusMessages(4);
    // Dovecot delivers one message first: its file name is its GUID.
    await grantDovecotAccess(scratch);
    await d.doveadm(['save', '-m', 'INBOX'], { user: 'alice', mailLocation: location, input: mail[0]! });
    const [delivered] = await doveadmFetch(d, 'alice', location, 'INBOX');
    const warnings: string[] = [];
    const store = MaildirStore.open(parseMaildirLocation(`${location}:INDEX=${join(scratch, 'index')}`), { fsync: false, warn: (m) => warnings.push(m) });
    try {
      const [ours] = await store.saveMessages(INBOX, [req(mail[1]!, { guid: 'a-guid-of-ours' })]);
      // Later calls, so only the mailbox's files (not this call's own names) can tell.
      const [copyOfOurs] = await store.saveMessages(INBOX, [req(mail[1]!, { guid: 'a-guid-of-ours' })]);
      const [copyOfTheirs] = await store.saveMessages(INBOX, [req(mail[0]!, { guid: delivered!.guid })]);
      assert.deepEqual([ours!.uid, copyOfOurs!.uid, copyOfTheirs!.uid], [2, 3, 4]);
      const listed = names(root);
      assert.equal(new Set(listed).size, 4, `four names: ${listed.join(', ')}`);
      assert.equal(readdirSync(join(root, 'cur')).length + readdirSync(join(root, 'new')).length, 4);
      const got = await store.getMessages(INBOX);
      assert.deepEqual(got.messages.map((m) => [m.uid, m.guid]), [[1, delivered!.guid], [2, 'a-guid-of-ours'], [3, 'a-guid-of-ours'], [4, delivered!.guid]]);
    } finally {
      await store.close();
    }
    assert.deepEqual(warnings, []);
    await grantDovecotAccess(scratch);
    const fetched = await doveadmFetch(d, 'alice', location, 'INBOX');
    assert.deepEqual(fetched.map((m) => [m.uid, m.guid]), [[1, delivered!.guid], [2, 'a-guid-of-ours'], [3, 'a-guid-of-ours'], [4, delivered!.guid]]);
  });
});
