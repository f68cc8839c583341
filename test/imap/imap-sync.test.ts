/**
 * Two-way sync between a Maildir and an IMAP account, through the CLI, with changes made on
 * both sides between runs: new mail, flags, expunges and a folder rename made by another IMAP
 * client on the server. Both sides converge; the next run changes nothing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { startDovecot, type Dovecot } from '../support/dovecot.js';
import { cli, lfOnly, passwordFile, seed, snapshot, withStore } from './imap-helpers.js';

describe('two-way sync Maildir <-> IMAP (CLI)', { timeout: 90_000 }, () => {
  let d: Dovecot;
  let dir: string;
  let pw: string;
  const mail = lfOnly(corpusMessages(300));
  const imap = () => `imap://carol@127.0.0.1:${d.port}/?tls=none&state=${join(dir, 'state')}`;
  const local = () => `maildir:${join(dir, 'local')}`;
  before(async () => {
    d = await startDovecot({ users: ['carol', 'erin'], imap: true });
    dir = await mkdtemp(join(tmpdir(), 'mailferry-imap-sync-'));
    pw = passwordFile(dir, 'carol', d.users.carol!);
    passwordFile(dir, 'erin', d.users.erin!);
  });
  after(async () => {
    await d?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Another IMAP client working on the account. */
  async function otherClient(fn: (c: ImapFlow) => Promise<void>): Promise<void> {
    const c = new ImapFlow({ host: '127.0.0.1', port: d.port, secure: false, doSTARTTLS: false, auth: { user: 'carol', pass: d.users.carol! }, logger: false });
    await c.connect();
    try {
      await fn(c);
    } finally {
      await c.logout();
    }
  }

  it('changes on both sides converge and a second run is a no-op', async () => {
    await seed(local(), mail.slice(0, 60), [['INBOX'], ['Work'], ['Lists', 'dev']]);
    await seed(imap(), mail.slice(60, 90), [['INBOX'], ['Remote']], pw);
    let r = cli(pw, 'sync', '--json', local(), imap());
    assert.equal(r.code, 0, r.stderr);
    let want = await snapshot(local());
    const remote = await snapshot(imap(), { passwordFile: pw });
    assert.deepEqual(remote, want);
    assert.equal(Object.values(want).flat().length, 90);

    // The server side, by another client: new mail, a flag, an expunge, a folder rename.
    await otherClient(async (c) => {
      await c.append('INBOX', mail[100]!.toString('latin1').replace(/\n/g, '\r\n'), ['\\Seen']);
      await c.mailboxOpen('Work');
      await c.messageFlagsAdd('1', ['\\Flagged', '$Important'], { uid: true });
      await c.messageDelete('2', { uid: true });
      await c.mailboxOpen('INBOX');
      await c.mailboxRename('Remote', 'Remote Renamed');
    });
    // The local side: new mail, a flag change, an expunge.
    await withStore(local(), async (s) => {
      await s.saveMessages(['Lists', 'dev'], [req(mail[101]!, { flags: ['\\Answered'] })]);
      const inbox = (await s.getMessages(['INBOX'])).messages;
      await s.updateFlags(['INBOX'], [{ uid: inbox[0]!.uid, flags: ['\\Seen', '\\Flagged'], keywords: ['todo'] }]);
      await s.expunge(['INBOX'], [inbox[1]!.uid]);
    });

    r = cli(pw, 'sync', '--json', local(), imap());
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
    if (r.code === 2) assert.equal(cli(pw, 'sync', local(), imap()).code, 0);
    want = await snapshot(local());
    assert.deepEqual(await snapshot(imap(), { passwordFile: pw }), want);
    assert.ok('Remote Renamed' in want && !('Remote' in want), `the rename reached the Maildir (${Object.keys(want).join(', ')})`);
    assert.equal(Object.values(want).flat().length, 90, '+2 new, -2 expunged');
    assert.ok(want['Work']!.some((l) => / \\Flagged.* \$Important /.test(l)), 'server flag change arrived');

    r = cli(pw, 'sync', '--json', local(), imap());
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.deepEqual([res.saved, res.flagUpdates, res.expunged, res.treeActions], [0, 0, 0, 0], r.stdout);
    process.stderr.write(`# Maildir <-> IMAP no-op sync: ${r.ms} ms\n`);
  });

  it('xguid=no: a first sync with a Maildir that already holds the same mail matches it by header, no duplicates', async () => {
    const both = mail.slice(120, 160);
    const l = `maildir:${join(dir, 'local-erin')}`;
    const r0 = `imap://erin@127.0.0.1:${d.port}/?tls=none&xguid=no&state=${join(dir, 'state-erin')}&passfile=${join(dir, 'erin.password')}`;
    // The same mail on both sides, put there independently (as by another tool).
    await seed(l, both, [['INBOX'], ['Work']]);
    await seed(r0, both, [['INBOX'], ['Work']]);
    await withStore(l, (s) => s.saveMessages(['Work'], [req(mail[161]!)]));
    let r = cli(undefined, 'sync', '--json', l, r0);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.equal(res.saved, 1, `only the one new message is copied (${r.stdout})`);
    const want = await snapshot(l);
    assert.deepEqual(await snapshot(r0), want);
    assert.equal(Object.values(want).flat().length, 41);
    r = cli(undefined, 'sync', '--json', l, r0);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).saved, 0);
  });
});
