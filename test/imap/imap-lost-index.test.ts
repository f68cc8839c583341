/**
 * An IMAP side index lost (or a state directory not carried over): the server's messages are
 * known again by X-GUID or header hash, not by the GUIDs the mail was copied under. The next
 * backup pairs them with the source by header hash, or by content for mail without Date and
 * Message-ID, warns once for the mailbox, and neither expunges nor uploads anything.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { req } from '../contract/store-contract.js';
import { HostileImapServer, type HostileScript } from '../support/hostile-imap-server.js';
import { cliAsync, passwordFile, withStore } from './imap-helpers.js';

const COUNT = 10;
/** Every fifth message has neither Date nor Message-ID. */
const mail = (i: number) =>
  i % 5 === 0 ? `Subject: no ids ${i}\nFrom:  a@example.org\n\nbody ${i}\n` : `Subject: m ${i}\nMessage-ID: <m${i}@lost>\nDate: Mon, ${i} Jan 2024 00:00:00 +0000\n\nbody ${i}\n`;

describe('backup to IMAP after the side index is lost', { timeout: 120_000 }, () => {
  let dir: string;
  let pw: string;
  let src: string;
  const servers: HostileImapServer[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-lost-index-'));
    pw = passwordFile(dir, 'alice', 'secret');
    src = `maildir:${join(dir, 'src')}`;
    await withStore(src, (s) => s.saveMessages(['INBOX'], Array.from({ length: COUNT }, (_, i) => req(Buffer.from(mail(i + 1))))).then(() => {}));
  });
  after(async () => {
    for (const s of servers) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const [what, script] of [
    ['a server with X-GUIDs', { xGuid: (m) => createHash('md5').update(`x${m.uid}`).digest('hex') }],
    ['a server without X-GUID or UIDPLUS that rewrites headers (mailutils)', { mailutils: true }],
  ] as [string, HostileScript][]) {
    it(`${what}: nothing expunged or uploaded again, one warning at most, and the next full backup is quiet`, async () => {
      const s = await HostileImapServer.start(script);
      servers.push(s);
      const loc = (state: string) => `imap://alice@127.0.0.1:${s.port}/?tls=none&state=${join(dir, `${servers.length}-${state}`)}`;
      const first = await cliAsync(pw, ['backup', src, loc('kept')]);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      const appends = s.seen.filter((c) => c === 'APPEND').length;
      const lost = await cliAsync(pw, ['backup', '-v', src, loc('lost')]);
      assert.equal(lost.code, 0, lost.stdout + lost.stderr);
      assert.match(lost.stdout + lost.stderr, /copied 0 messages \(0 bytes\), 0 flag updates, 0 expunges/, lost.stdout + lost.stderr);
      assert.ok(lost.stderr.split('\n').filter((l) => /warning/.test(l)).length <= 1, lost.stderr);
      const again = await cliAsync(pw, ['backup', '-v', '-f', src, loc('lost')]);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.match(again.stdout + again.stderr, /copied 0 messages \(0 bytes\), 0 flag updates, 0 expunges/, again.stdout + again.stderr);
      assert.doesNotMatch(again.stderr, /warning/, 'the pairing was kept');
      assert.equal(s.seen.filter((c) => c === 'APPEND').length, appends, 'nothing uploaded again');
      assert.equal(s.mailboxes.get('INBOX')!.length, COUNT);
    });
  }
});
