/**
 * IMAP -> Maildir migration keeps the server's UIDs: against Dovecot serving an existing Maildir,
 * a first `backup imap://... maildir:COPY` creates each mailbox with the server's UIDVALIDITY,
 * copies every message at the server's UID, rebuilds nothing, and a second backup is a no-op.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeMutf7 } from '../../src/model/mutf7.js';
import { nextUidOf, parseUidlist, type Uidlist } from '../../src/storage/maildir/uidlist.js';
import { corpusMessages } from '../support/corpus.js';
import { doveadmFetch, doveadmMailboxStatus, grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';
import { cli, lfOnly, passwordFile, seed } from './imap-helpers.js';

const FOLDERS = [['INBOX'], ['Sent Items'], ['Entwürfe'], ['A & B'], ['Work'], ['Work', 'Q3']];

/** A mailbox's directory under a Maildir++ root, as Dovecot names it. */
const boxDir = (root: string, name: string[]) => (name[0] === 'INBOX' && name.length === 1 ? root : join(root, `.${name.map(encodeMutf7).join('.')}`));
const uidlistOf = (root: string, name: string[]): Uidlist => {
  const path = join(boxDir(root, name), 'dovecot-uidlist');
  return parseUidlist(readFileSync(path, 'utf8'), path).uidlist;
};

describe('IMAP -> Maildir first backup (CLI)', { timeout: 120_000 }, () => {
  let d: Dovecot;
  let dir: string;
  let pw: string;
  let served: string;
  const imap = () => `imap://alice@127.0.0.1:${d.port}/?tls=none&state=${join(dir, 'state')}`;

  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: true });
    dir = await mkdtemp(join(tmpdir(), 'mailferry-imap-first-backup-'));
    pw = passwordFile(dir, 'alice', d.users.alice!);
    // An existing Maildir the server is pointed at, with mailferry's index kept outside it.
    served = join(d.home('alice'), 'Maildir');
    await seed(`maildir:${served}:INDEX=${join(dir, 'seed-index')}`, lfOnly(corpusMessages(90)), FOLDERS);
    await grantDovecotAccess(served);
    // The server's own changes on top: UIDs no longer run 1..N in INBOX.
    await d.doveadm(['expunge', 'mailbox', 'INBOX', 'uid', '2:3'], { user: 'alice' });
    await d.doveadm(['save', '-m', 'INBOX'], { user: 'alice', input: lfOnly(corpusMessages(95))[92]! });
    await d.doveadm(['flags', 'add', '\\Flagged', 'mailbox', 'Work.Q3', 'uid', '1'], { user: 'alice' });
  });
  after(async () => {
    await d?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates every mailbox with the server\'s UIDVALIDITY and UIDs, rebuilds nothing, and a second run is a no-op', async () => {
    const copy = join(dir, 'copy');
    const r = cli(pw, 'backup', '--json', imap(), `maildir:${copy}`);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /rebuild/i, 'nothing is rebuilt');
    const first = JSON.parse(r.stdout);
    assert.equal(first.rebuilt, 0, r.stdout);

    for (const name of FOLDERS) {
      const what = name.join('/');
      const status = await doveadmMailboxStatus(d, 'alice', undefined, name.join('.'));
      const fetched = await doveadmFetch(d, 'alice', undefined, name.join('.'));
      assert.ok(fetched.length > 0, `${what} holds mail on the server`);
      const server = uidlistOf(served, name);
      const copied = uidlistOf(copy, name);
      assert.equal(server.uidValidity, status.uidvalidity, `${what}: the server's uidlist is what doveadm reports`);
      assert.equal(copied.uidValidity, status.uidvalidity, `${what}: the copy has the server's UIDVALIDITY`);
      assert.equal(nextUidOf(copied), status.uidnext, `${what}: the copy's next UID is the server's`);
      assert.deepEqual(copied.entries.map((e) => e.uid), fetched.map((m) => m.uid), `${what}: the copy holds the server's UIDs`);
      assert.deepEqual(copied.entries.map((e) => e.guid ?? e.basename), fetched.map((m) => m.guid), `${what}: each UID holds the server's message`);
    }

    const again = cli(pw, 'backup', '--json', imap(), `maildir:${copy}`);
    assert.equal(again.code, 0, again.stderr);
    const noop = JSON.parse(again.stdout);
    assert.deepEqual([noop.saved, noop.flagUpdates, noop.expunged, noop.rebuilt, noop.treeActions], [0, 0, 0, 0, 0], `a second backup changes nothing (${again.stdout})`);
    for (const name of FOLDERS) {
      const fetched = await doveadmFetch(d, 'alice', undefined, name.join('.'));
      assert.deepEqual(uidlistOf(copy, name).entries.map((e) => e.uid), fetched.map((m) => m.uid), `${name.join('/')} unchanged by the second run`);
    }
  });
});
