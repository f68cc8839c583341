/**
 * Matching trouble with IMAP servers never turns into emptying and re-copying a mailbox: the
 * same UID answered twice, an X-GUID no store can keep, and a server without UIDPLUS that
 * rewrites header whitespace and field-name case (GNU mailutils' imap4d) each give a first run
 * that copies the mail once and a second run that changes nothing and exits 0.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/storage/open-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { req } from '../contract/store-contract.js';
import { HostileImapServer, type HostileScript } from '../support/hostile-imap-server.js';
import { cliAsync, passwordFile, snapshot, withStore } from './imap-helpers.js';

/** Headers the way mail clients write them: odd spacing, tabs, folding, lower-case names. */
const mail = (i: number) =>
  [
    `Subject: message ${i}`,
    i % 3 === 0 ? `message-id:  <m${i}@matching>` : i % 3 === 1 ? `Message-Id:\t<m${i}@matching>  ` : `Message-ID:\n <m${i}@matching>`,
    i % 2 === 0 ? `Date: Mon, ${1 + (i % 28)} Jan 2024 00:00:00 +0000` : `date:   Mon,  ${1 + (i % 28)} Jan 2024\n\t00:00:00 +0000`,
    '',
    `body ${i}`,
    '',
  ].join('\n');

/** A run that found nothing to do: no copies, flag changes, expunges or rebuilds, no warning. */
function assertNoChange(r: { code: number; stdout: string; stderr: string }, opts: { mailboxChanges?: number; warnings?: RegExp } = {}): void {
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const summary = new RegExp(`copied 0 messages \\(0 bytes\\), 0 flag updates, 0 expunges, ${opts.mailboxChanges ?? 0} mailbox changes, 0 rebuilt`);
  assert.match(r.stdout + r.stderr, summary, r.stdout + r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => /warning/.test(l) && !opts.warnings?.test(l));
  assert.deepEqual(warnings, [], r.stderr);
}

const SAME_UID = /under a UID another message has/;

describe('IMAP matching trouble', { timeout: 120_000 }, () => {
  let dir: string;
  let pw: string;
  let n = 0;
  const servers: HostileImapServer[] = [];
  const serve = async (script: HostileScript, count = 0) => {
    const s = await HostileImapServer.start(script);
    servers.push(s);
    for (let i = 1; i <= count; i++) s.add('INBOX', mail(i));
    return s;
  };
  const loc = (s: HostileImapServer, state = `state${++n}`) => `imap://alice@127.0.0.1:${s.port}/?tls=none&state=${join(dir, state)}`;
  const open = (location: string, warnings: string[] = []) => openStore(location, { passwordFile: pw, warn: (m: string) => warnings.push(m) } as never) as Promise<MailStore>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-matching-'));
    pw = passwordFile(dir, 'alice', 'secret');
  });
  after(async () => {
    for (const s of servers) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('the same UID twice in a FETCH answer: one message per UID, and a second backup to a Maildir changes nothing', async () => {
    const s = await serve({}, 5);
    s.addSameUid('INBOX', mail(99));
    const location = loc(s);
    const store = await open(location);
    try {
      const { messages } = await store.getMessages(['INBOX']);
      assert.equal(messages.length, 5, JSON.stringify(messages));
      assert.equal(new Set(messages.map((m) => m.uid)).size, 5);
      assert.equal(new Set(messages.map((m) => m.guid)).size, 5);
    } finally {
      await store.close();
    }
    const out = `maildir:${join(dir, 'dup-uids')}`;
    const first = await cliAsync(pw, ['backup', '-v', location, out]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assertNoChange(await cliAsync(pw, ['backup', '-v', '-f', location, out]), { warnings: SAME_UID });
    assert.equal((await snapshot(out)).INBOX!.length, 5);
  });

  it('the same UID twice, two-way with a Maildir: the second sync is a no-op with exit 0, the server keeps its messages', async () => {
    const s = await serve({}, 4);
    s.addSameUid('INBOX', mail(98));
    const location = loc(s);
    const out = `maildir:${join(dir, 'dup-uids-sync')}`;
    await withStore(out, async () => {});
    const first = await cliAsync(pw, ['sync', '-v', out, location]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const second = await cliAsync(pw, ['sync', '-v', '-f', out, location]);
    assertNoChange(second, { warnings: SAME_UID });
    assert.equal(second.stderr.split('\n').filter((l) => SAME_UID.test(l)).length, 1, 'said once a run');
    assert.equal(s.mailboxes.get('INBOX')!.length, 5, 'nothing appended to or expunged from the server');
    assert.equal((await snapshot(out)).INBOX!.length, 4);
  });

  for (const [what, xGuid] of [
    ['containing a space', (m: { uid: number }) => `guid ${m.uid}`],
    ['of control and non-ASCII bytes', (m: { uid: number }) => `\u0001\u00e9${m.uid}\t`],
    ['empty', () => ''],
  ] as const) {
    it(`an X-GUID ${what}: the message is known by its header hash, and a second backup changes nothing`, async () => {
      const s = await serve({ xGuid }, 6);
      const location = loc(s);
      const store = await open(location);
      try {
        assert.equal(store.nativeGuids, true, 'the server answers X-GUID');
        const { messages } = await store.getMessages(['INBOX']);
        assert.equal(messages.length, 6);
        for (const m of messages) assert.match(m.guid, /^[0-9a-f]{32}$/, `GUID of UID ${m.uid}`);
      } finally {
        await store.close();
      }
      const out = `maildir:${join(dir, `xguid-${++n}`)}`;
      const first = await cliAsync(pw, ['backup', '-v', location, out]);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      assertNoChange(await cliAsync(pw, ['backup', '-v', '-f', location, out]));
      assert.equal((await snapshot(out)).INBOX!.length, 6);
    });
  }

  it('a usable X-GUID is still the GUID', async () => {
    const hex = (m: { uid: number }) => createHash('md5').update(`x${m.uid}`).digest('hex');
    const s = await serve({ xGuid: hex }, 3);
    const store = await open(loc(s));
    try {
      const { messages } = await store.getMessages(['INBOX']);
      assert.deepEqual(messages.map((m) => m.guid), [1, 2, 3].map((uid) => hex({ uid })));
    } finally {
      await store.close();
    }
  });

  describe('a server without UIDPLUS that rewrites headers (mailutils)', () => {
    const COUNT = 70; // more than one batch
    const seedMaildir = async (name: string) => {
      const location = `maildir:${join(dir, name)}`;
      await withStore(location, async (m) => {
        await m.saveMessages(['INBOX'], Array.from({ length: COUNT }, (_, i) => req(Buffer.from(mail(i + 1)))));
      });
      return location;
    };

    it('every uploaded message is found again: no "could not be found" warning, exit 0', async () => {
      const s = await serve({ mailutils: true });
      const src = await seedMaildir('mu-src-1');
      const r = await cliAsync(pw, ['backup', src, loc(s)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.doesNotMatch(r.stderr, /could not be found/);
      assert.equal(s.mailboxes.get('INBOX')!.length, COUNT);
      assert.match(s.mailboxes.get('INBOX')![0]!.body.toString('latin1'), /^Subject: message 1\r\nMessage-Id: <m1@matching>\r\ndate: Mon, 2 Jan 2024 00:00:00 \+0000\r\n\r\n/, 'the server rewrote the header');
    });

    it('the next backup and a full one change nothing: nothing expunged, nothing uploaded again', async () => {
      const s = await serve({ mailutils: true });
      const src = await seedMaildir('mu-src-2');
      const location = loc(s);
      assert.equal((await cliAsync(pw, ['backup', src, location])).code, 0);
      const appends = s.seen.filter((c) => c === 'APPEND').length;
      for (const extra of [[], ['-f']]) assertNoChange(await cliAsync(pw, ['backup', '-v', ...extra, src, location]));
      assert.equal(s.seen.filter((c) => c === 'APPEND').length, appends, 'nothing appended again');
      assert.equal(s.mailboxes.get('INBOX')!.length, COUNT);
    });

    it('with the IMAP side index lost, the next backup pairs every message by header hash instead of re-copying', async () => {
      const s = await serve({ mailutils: true });
      const src = await seedMaildir('mu-src-3');
      assert.equal((await cliAsync(pw, ['backup', src, loc(s, 'mu-lost-a')])).code, 0);
      const appends = s.seen.filter((c) => c === 'APPEND').length;
      // The mailbox itself is known again by its GUID: one mailbox change.
      assertNoChange(await cliAsync(pw, ['backup', '-v', src, loc(s, 'mu-lost-b')]), { mailboxChanges: 1 });
      assert.equal(s.seen.filter((c) => c === 'APPEND').length, appends, 'nothing appended again');
      assert.equal(s.mailboxes.get('INBOX')!.length, COUNT, 'nothing expunged');
      assertNoChange(await cliAsync(pw, ['backup', '-v', '-f', src, loc(s, 'mu-lost-b')]));
    });

    it('a message without Date and Message-ID is found again by the UID it was given', async () => {
      const s = await serve({ mailutils: true });
      const warnings: string[] = [];
      const store = await open(loc(s), warnings);
      try {
        const saved = await store.saveMessages(['INBOX'], [req(Buffer.from('Subject:   no ids\n\nbody\n')), req(Buffer.from('From:  a@b\n\nother\n'))]);
        assert.equal(saved.length, 2, warnings.join('\n'));
        const { messages } = await store.getMessages(['INBOX']);
        assert.deepEqual(messages.map((m) => m.guid).sort(), saved.map((m) => m.guid).sort());
      } finally {
        await store.close();
      }
    });
  });
});
