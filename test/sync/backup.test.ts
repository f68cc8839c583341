/**
 * `mailferry backup` end to end: the built CLI on real Maildirs, doveadm as the oracle.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { renameSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { readAll, req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { doveadmFetch, doveadmMailboxStatus, grantDovecotAccess, startDovecot, type Dovecot } from '../support/dovecot.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function open(location: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(location), { create: true, fsync: false, warn: () => {} });
}

/** Every mailbox with its identity and every message's UID, GUID, flags, keywords and body. */
async function snapshot(store: MailStore, bodies = true): Promise<unknown> {
  const list = await store.listMailboxes();
  const out: unknown[] = [];
  for (const m of [...list.mailboxes].sort((a, b) => a.name.join('/').localeCompare(b.name.join('/')))) {
    const { messages } = await store.getMessages(m.name);
    const msgs = [];
    for (const x of messages) {
      msgs.push({
        uid: x.uid,
        guid: x.guid,
        flags: [...x.flags].sort(),
        keywords: [...x.keywords].sort(),
        received: x.receivedDate,
        body: bodies ? (await readAll(await store.openMessage(m.name, x.uid))).toString('base64') : x.size,
      });
    }
    out.push({ name: m.name, guid: m.guid, uidValidity: m.uidValidity, uidNext: m.uidNext, subscribed: m.subscribed, msgs });
  }
  return out;
}

async function assertEqualStores(a: string, b: string, bodies = true): Promise<void> {
  const sa = open(a);
  const sb = open(b);
  try {
    assert.deepEqual(await snapshot(sb, bodies), await snapshot(sa, bodies));
  } finally {
    await sa.close();
    await sb.close();
  }
}

describe('backup', { timeout: 900_000 }, () => {
  let dir: string;
  let d: Dovecot;
  const folders = [['INBOX'], ['Sent Items'], ['Entwürfe'], ['A & B'], ['Work', 'Q3'], ['Work', 'Q4'], ['Lists', 'dev'], ['Lists', 'users'], ['Spam'], ['Archive', '2019'], ['日本語']];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-backup-'));
    d = await startDovecot({ users: ['alice'], imap: false });
  });
  after(async () => {
    await d?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('copies the SpamAssassin corpus in 11 folders; doveadm reads identical UIDs, GUIDs, flags and keywords; an incremental run copies only the 100 changes', async () => {
    const src = `maildir:${join(dir, 'corpus-src')}`;
    const dst = `maildir:${join(dir, 'corpus-dst', 'Maildir')}`;
    const mail = corpusMessages();
    const store = open(src);
    for (const f of folders.slice(1)) await store.createMailbox(f);
    await store.setSubscribed(['Sent Items'], true);
    for (let fi = 0; fi < folders.length; fi++) {
      await store.saveMessages(
        folders[fi]!,
        mail.filter((_, i) => i % folders.length === fi).map((m, i) =>
          req(m, { flags: i % 3 ? ['\\Seen'] : [], keywords: i % 5 === 0 ? ['$Label1', `kw${i % 30}`] : [], receivedDate: Date.UTC(2002, 0, 1) + i * 60_000 }),
        ),
      );
    }
    await store.close();

    const first = cli('backup', '--json', src, dst);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout).saved, mail.length);
    await assertEqualStores(src, dst);

    await grantDovecotAccess(join(dir, 'corpus-dst'));
    const reader = open(`${src}`);
    try {
      for (const f of folders) {
        const shown = f.join('.');
        const status = await doveadmMailboxStatus(d, 'alice', dst, shown);
        const ours = (await reader.mailboxStatus(f))!;
        assert.deepEqual([status.guid, status.uidvalidity, status.uidnext, status.messages], [ours.guid, ours.uidValidity, ours.uidNext, ours.messages], shown);
        const theirs = await doveadmFetch(d, 'alice', dst, shown);
        const { messages } = await reader.getMessages(f);
        assert.deepEqual(
          theirs.map((m) => [m.uid, m.guid, [...m.flags].sort()]),
          messages.map((m) => [m.uid, m.guid, [...m.flags, ...m.keywords].filter((k) => !/^kw(2[6-9])$/.test(k) || true).sort()]),
          shown,
        );
      }
    } finally {
      await reader.close();
    }

    // 100 changes at the source: 40 new, 40 flag changes, 20 expunges.
    const s = open(src);
    const inbox = (await s.getMessages(['INBOX'])).messages;
    await s.saveMessages(['Work', 'Q3'], mail.slice(0, 40).map((m) => req(m, { flags: ['\\Flagged'] })));
    await s.updateFlags(['INBOX'], inbox.slice(0, 40).map((m) => ({ uid: m.uid, flags: ['\\Answered'], keywords: ['$Forwarded'] })));
    await s.expunge(['INBOX'], inbox.slice(40, 60).map((m) => m.uid));
    await s.close();
    const second = cli('backup', '--json', src, dst);
    assert.equal(second.code, 0, second.stderr);
    const r = JSON.parse(second.stdout);
    assert.deepEqual([r.saved, r.flagUpdates, r.expunged, r.rebuilt, r.treeActions], [40, 40, 20, 0, 0]);
    await assertEqualStores(src, dst, false);
    const third = cli('backup', '--json', src, dst);
    assert.deepEqual(
      (({ saved, flagUpdates, expunged, rebuilt, treeActions }) => [saved, flagUpdates, expunged, rebuilt, treeActions])(JSON.parse(third.stdout)),
      [0, 0, 0, 0, 0],
      'a run with nothing to do changes nothing',
    );
  });

  it('a folder renamed at the source is renamed at the destination, not copied again', async () => {
    const src = `maildir:${join(dir, 'ren-src')}`;
    const dst = `maildir:${join(dir, 'ren-dst')}`;
    const s = open(src);
    await s.createMailbox(['Projects']);
    await s.createMailbox(['Projects', 'Alpha']);
    await s.saveMessages(['Projects', 'Alpha'], corpusMessages(20).map((m) => req(m)));
    await s.close();
    assert.equal(cli('backup', src, dst).code, 0);
    const s2 = open(src);
    await s2.renameMailbox(['Projects'], ['Old Projects']);
    await s2.close();
    const r = cli('backup', '--json', src, dst);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.equal(res.saved, 0, 'nothing re-copied');
    assert.equal(res.treeActions, 1, 'one rename');
    await assertEqualStores(src, dst);
  });

  it('the destination is made equal: extra mail and folders removed, a diverged mailbox rebuilt', async () => {
    const src = `maildir:${join(dir, 'eq-src')}`;
    const dst = `maildir:${join(dir, 'eq-dst')}`;
    const s = open(src);
    await s.saveMessages(['INBOX'], corpusMessages(10).map((m) => req(m)));
    await s.close();
    assert.equal(cli('backup', src, dst).code, 0);
    const t = open(dst);
    await t.createMailbox(['Extra']);
    await t.saveMessages(['INBOX'], corpusMessages(3).map((m) => req(m, { guid: undefined })));
    await t.updateFlags(['INBOX'], [{ uid: 1, flags: ['\\Deleted'], keywords: [] }]);
    await t.close();
    const r = cli('backup', '--json', src, dst);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).rebuilt, 1, 'UIDNEXT above the source: rebuilt');
    await assertEqualStores(src, dst);
  });

  it('killed at random points, re-run: equal, nothing lost, nothing twice', async () => {
    const src = `maildir:${join(dir, 'kill-src')}`;
    const dst = `maildir:${join(dir, 'kill-dst')}`;
    const s = open(src);
    await s.createMailbox(['Big']);
    const mail = corpusMessages(1500);
    await s.saveMessages(['INBOX'], mail.slice(0, 700).map((m) => req(m)));
    await s.saveMessages(['Big'], mail.slice(700).map((m, i) => req(m, { flags: i % 2 ? ['\\Seen'] : [] })));
    await s.close();
    for (const delay of [350, 600, 900, 1200]) {
      await new Promise<void>((resolve) => {
        const child = spawn(process.execPath, [CLI, '-o', 'mail_fsync=never', 'backup', src, dst], { stdio: 'ignore' });
        setTimeout(() => child.kill('SIGKILL'), delay);
        child.on('exit', () => resolve());
      });
    }
    const r = cli('backup', src, dst);
    assert.equal(r.code, 0, r.stderr);
    await assertEqualStores(src, dst);
    const files = readdirSync(join(dir, 'kill-dst', '.Big', 'cur'));
    assert.equal(files.length, 800, 'no duplicate files');
  });

  it('mail delivered into the source during a run gives exit 2; the next run converges with exit 0', async () => {
    const src = `maildir:${join(dir, 'live-src')}`;
    const dst = `maildir:${join(dir, 'live-dst')}`;
    const s = open(src);
    await s.saveMessages(['INBOX'], corpusMessages(3000).map((m) => req(m)));
    await s.close();
    const child = spawn(process.execPath, [CLI, 'backup', src, dst], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const exited = new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
    // A delivery agent keeps dropping messages into new/ while the copy runs.
    let n = 0;
    let running = true;
    void exited.then(() => (running = false));
    while (running) {
      const tmp = join(dir, 'live-src', 'tmp', `delivered-${n}.tmp`);
      writeFileSync(tmp, `Subject: late ${n}\n\nlate mail\n`);
      renameSync(tmp, join(dir, 'live-src', 'new', `${Math.floor(Date.now() / 1000)}.M${n}P1.late`));
      n++;
      await new Promise((r) => setTimeout(r, 20));
    }
    const code = await exited;
    assert.equal(code, 2, `exit 2 expected: ${stderr}`);
    assert.match(stderr, /changed during the backup/);
    const again = cli('backup', src, dst);
    assert.equal(again.code, 0, again.stderr);
    await assertEqualStores(src, dst, false);
  });

  describe('bad input: a one-line error, the documented exit code, nothing changed', () => {
    it('source equal to destination', () => {
      const loc = `maildir:${join(dir, 'corpus-src')}`;
      const r = cli('backup', loc, `${loc}/`);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /same mail location/);
    });
    it('a missing source', () => {
      const r = cli('backup', `maildir:${join(dir, 'missing')}`, `maildir:${join(dir, 'never-made')}`);
      assert.equal(r.code, 65);
      assert.match(r.stderr, /missing: no such file/);
      assert.throws(() => readdirSync(join(dir, 'never-made')), 'destination not created');
    });
    it('no destination', () => {
      const r = cli('backup', `maildir:${join(dir, 'corpus-src')}`);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /needs SOURCE and DESTINATION/);
    });
    it('an unknown option', () => {
      const r = cli('backup', '--frobnicate', 'maildir:/a', 'maildir:/b');
      assert.equal(r.code, 64);
    });
    it('a corrupt change index at the destination', () => {
      const bad = join(dir, 'bad-dst');
      const r0 = cli('backup', `maildir:${join(dir, 'ren-src')}`, `maildir:${bad}`);
      assert.equal(r0.code, 0, r0.stderr);
      for (const f of readdirSync(bad).filter((f) => f.startsWith('mailferry.index.sqlite'))) unlinkSync(join(bad, f));
      writeFileSync(join(bad, 'mailferry.index.sqlite'), Buffer.alloc(8192, 3));
      const r = cli('backup', `maildir:${join(dir, 'ren-src')}`, `maildir:${bad}`);
      assert.equal(r.code, 65);
      assert.match(r.stderr, /mailferry\.index\.sqlite.*move it aside/);
    });
    it('--dry-run prints the plan and changes nothing', async () => {
      const src = `maildir:${join(dir, 'ren-src')}`;
      const dst = `maildir:${join(dir, 'dry-dst')}`;
      const r = cli('backup', '--dry-run', src, dst);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /create mailbox Old Projects/);
      assert.match(r.stdout, /copy 20/);
      assert.throws(() => readdirSync(join(dir, 'dry-dst')));
    });
  });
});
