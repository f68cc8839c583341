/**
 * Against GNU mailutils' imap4d (Debian package mailutils-imap4d): no UIDPLUS, headers rewritten
 * on APPEND, and an mbox spool it shows a session wrongly while the file carries no X-IMAPbase
 * (see imap-save.ts). A backup of real mail into it uploads every message once and finds each
 * again; the next backup and a two-way sync each way change nothing, on the server or at home.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SystemFlag } from '../../src/storage/store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { findImap4d, Imap4d, IMAP4D_PACKAGE } from '../support/imap4d.js';
import { cliAsync, passwordFile, snapshot, withStore, type CliResult } from './imap-helpers.js';

const COUNT = 30;
const WRITES = new Set(['APPEND', 'STORE', 'UID STORE', 'EXPUNGE', 'UID EXPUNGE', 'COPY', 'UID COPY', 'MOVE', 'UID MOVE']);

/** Corpus messages without the mbox `From ` line most of them start with. */
function corpus(n: number): Buffer[] {
  return corpusMessages(n).map((b) => (b.toString('latin1', 0, 5) === 'From ' ? b.subarray(b.indexOf(10) + 1) : b));
}

describe('GNU mailutils imap4d', { timeout: 300_000 }, () => {
  let dir: string;
  let pw: string;
  let server: Imap4d;
  let src: string;
  let dest: string;

  const writes = () => server.commands().filter((c) => WRITES.has(c));
  /** How many messages the server holds, as a client that never saw it before counts them. */
  const held = async (): Promise<number> => {
    const fresh = `imap://alice@127.0.0.1:${server.port}/?tls=none&state=${join(dir, `count-${Date.now()}-${Math.random()}`)}`;
    return withStore(fresh, async (s) => (await s.getMessages(['INBOX'])).messages.length, pw);
  };
  const warnings = (r: CliResult) => r.stderr.split('\n').filter((l) => /warning/i.test(l));

  before(async () => {
    // CI installs the package; a machine without it must not pass this silently.
    if (!findImap4d()) throw new Error(`imap4d not found: install the Debian package ${IMAP4D_PACKAGE}`);
    dir = await mkdtemp(join(tmpdir(), 'mailferry-mailutils-'));
    pw = passwordFile(dir, 'alice', 'unused');
    server = await Imap4d.start(dir, { log: true });
    src = `maildir:${join(dir, 'src')}`;
    dest = `imap://alice@127.0.0.1:${server.port}/?tls=none&state=${join(dir, 'state')}`;
    const flags = (i: number): SystemFlag[] => (i % 3 === 0 ? ['\\Seen'] : i % 7 === 0 ? ['\\Seen', '\\Flagged'] : []);
    await withStore(src, (s) => s.saveMessages(['INBOX'], corpus(COUNT).map((b, i) => req(b, { flags: flags(i) }))).then(() => {}));
  });
  after(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a backup from a Maildir uploads every message once and finds each again: exit 0, no warning', async () => {
    const r = await cliAsync(pw, ['backup', src, dest]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(warnings(r), [], r.stderr);
    assert.equal(server.commands().filter((c) => c === 'APPEND').length, COUNT, 'each message uploaded once');
    assert.equal(await held(), COUNT, 'the server kept every uploaded message');
  });

  it('a second backup, and a full one, change nothing: nothing uploaded, stored or expunged', async () => {
    const before = writes().length;
    for (const extra of [[], ['-f']]) {
      const r = await cliAsync(pw, ['backup', '-v', ...extra, src, dest]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(warnings(r), [], r.stderr);
      assert.deepEqual(writes().slice(before), [], `backup ${extra.join(' ')} wrote to the server`);
    }
    assert.equal(await held(), COUNT);
  });

  it('a two-way sync each way afterwards changes nothing on either side', async () => {
    const home = await snapshot(src, { uids: true });
    const before = writes().length;
    for (const [a, b] of [[src, dest], [dest, src]]) {
      const r = await cliAsync(pw, ['sync', '-v', a!, b!]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(warnings(r), [], r.stderr);
    }
    assert.deepEqual(writes().slice(before), [], 'the syncs wrote to the server');
    assert.deepEqual(await snapshot(src, { uids: true }), home, 'the syncs changed the Maildir');
    assert.equal(await held(), COUNT);
  });
});
