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

  /** What must agree between doveadm and mailferry for one mbox mailbox. */
  async function assertSameAsDoveadm(location: string, s: MailStore, folder: string[], sizes: boolean): Promise<void> {
    const shown = folder.join('/');
    const theirs = await doveadmMailboxStatus(d, 'alice', location, shown);
    const ours = (await s.mailboxStatus(folder))!;
    assert.deepEqual(
      { messages: ours.messages, uidvalidity: ours.uidValidity, uidnext: ours.uidNext },
      { messages: theirs.messages, uidvalidity: theirs.uidvalidity, uidnext: theirs.uidnext },
      `status of ${shown}`,
    );
    const fetched = await doveadmFetch(d, 'alice', location, shown);
    const { messages } = await s.getMessages(folder);
    assert.deepEqual(
      messages.map((m) => `${m.uid} ${[...m.flags, ...m.keywords].sort().join(' ')} ${sizes ? m.size : ''}`),
      fetched.map((m) => `${m.uid} ${[...m.flags].sort().join(' ')} ${sizes ? m.size : ''}`),
      `messages of ${shown}`,
    );
  }

  /** Per mailbox: sorted `guid flags` lines. */
  async function view(location: string): Promise<Record<string, string[]>> {
    return withStore(location, async (s) => {
      const out: Record<string, string[]> = {};
      for (const m of (await s.listMailboxes()).mailboxes) {
        const { messages } = await s.getMessages(m.name);
        out[m.name.join('/')] = messages.map((x) => `${x.guid} ${[...x.flags, ...x.keywords].sort().join(' ')}`).sort();
      }
      return out;
    });
  }

  async function counters(location: string): Promise<string> {
    return withStore(location, async (s) =>
      (await s.listMailboxes()).mailboxes.map((m) => `${m.name.join('/')} ${m.uidNext} ${m.highestModseq} ${m.messages}`).sort().join('\n'),
    );
  }

  it('an mbox Dovecot wrote reads with its UIDs, flags and keywords, and syncs two-way with a Maildir', async () => {
    const mail = corpusMessages(60).slice(30);
    const root = join(scratch, 'dv', 'mail');
    mkdirSync(root, { recursive: true });
    mkdirSync(join(scratch, 'dv', 'dovecot-index'));
    await grantDovecotAccess(join(scratch, 'dv'));
    const dv = `mbox:${root}:INBOX=${join(root, 'inbox')}:INDEX=${join(scratch, 'dv', 'dovecot-index')}`;
    // mailferry's index goes outside the root: Dovecot lists hidden entries of an mbox root as
    // mailboxes too, and would try to lock the SQLite files (see the note in the report on location.ts).
    const ours = `mbox:${root}:INDEX=${join(scratch, 'dv-index')}`;
    await d.doveadm(['mailbox', 'create', 'Lists/dev'], { user: 'alice', mailLocation: dv });
    for (const [i, m] of mail.entries()) await d.doveadm(['save', '-m', i % 3 === 0 ? 'Lists/dev' : 'INBOX'], { user: 'alice', mailLocation: dv, input: m });
    await d.doveadm(['flags', 'add', '\\Seen $Label1 project-x', 'mailbox', 'INBOX', 'uid', '1:4'], { user: 'alice', mailLocation: dv });
    await d.doveadm(['flags', 'add', '\\Flagged \\Answered', 'mailbox', 'Lists/dev', 'uid', '2'], { user: 'alice', mailLocation: dv });
    await d.doveadm(['expunge', 'mailbox', 'INBOX', 'uid', '3'], { user: 'alice', mailLocation: dv });
    await withStore(ours, async (s) => {
      for (const folder of [['INBOX'], ['Lists', 'dev']]) await assertSameAsDoveadm(dv, s, folder, true);
      const first = (await s.getMessages(['INBOX'])).messages[0]!;
      assert.deepEqual([...first.keywords].sort(), ['$Label1', 'project-x']);
    });

    const md = `maildir:${join(scratch, 'dv-maildir')}`;
    let r = cli('sync', ours, md);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(md), await view(ours), 'after the first sync');

    // Changes on both sides: Dovecot flags, delivers and expunges in the mbox; a client does the same in the Maildir.
    await grantDovecotAccess(join(scratch, 'dv'));
    await d.doveadm(['flags', 'add', '\\Flagged', 'mailbox', 'INBOX', 'uid', '2'], { user: 'alice', mailLocation: dv });
    await d.doveadm(['save', '-m', 'INBOX'], { user: 'alice', mailLocation: dv, input: corpusMessages(61)[60]! });
    await d.doveadm(['expunge', 'mailbox', 'INBOX', 'uid', '5'], { user: 'alice', mailLocation: dv });
    await withStore(md, async (s) => {
      const { messages } = await s.getMessages(['Lists', 'dev']);
      await s.updateFlags(['Lists', 'dev'], [{ uid: messages[0]!.uid, flags: ['\\Seen', '\\Answered'], keywords: ['from-maildir'] }]);
      await s.expunge(['Lists', 'dev'], [messages[1]!.uid]);
      await s.saveMessages(['INBOX'], [req(corpusMessages(62)[61]!, { flags: ['\\Draft'] })]);
    });
    const mboxBefore = await view(ours);
    const maildirBefore = await view(md);
    r = cli('sync', ours, md);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
    const mboxAfter = await view(ours);
    assert.deepEqual(await view(md), mboxAfter, 'both sides agree after the second sync');
    assert.equal(mboxAfter.INBOX!.length, mboxBefore.INBOX!.length + 1, 'the Maildir delivery reached the mbox');
    assert.equal(mboxAfter['Lists/dev']!.length, maildirBefore['Lists/dev']!.length, 'the Maildir expunge reached the mbox');
    assert.ok(mboxAfter.INBOX!.some((l) => / \\Draft$/.test(l)));
    assert.ok(mboxAfter['Lists/dev']!.some((l) => l.endsWith('\\Answered \\Seen from-maildir')));

    // Dovecot still reads the mbox as mailferry does. (Sizes differ for messages mailferry wrote:
    // Dovecot serves the header lines mailferry keeps hidden, such as X-Mailferry-GUID.)
    await grantDovecotAccess(join(scratch, 'dv'));
    await withStore(ours, async (s) => {
      for (const folder of [['INBOX'], ['Lists', 'dev']]) await assertSameAsDoveadm(dv, s, folder, false);
    });

    const settled = [await counters(ours), await counters(md)];
    r = cli('sync', ours, md);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([await counters(ours), await counters(md)], settled, 'a further sync changes nothing');
  });

  it('appends and in-place flag changes read back in doveadm with the same UIDs, flags and keywords', async () => {
    const root = join(scratch, 'inplace', 'mail');
    const ours = `mbox:${root}:INDEX=${join(scratch, 'inplace-index')}`;
    const mail = corpusMessages(70).slice(62);
    const sizes: number[] = [];
    await withStore(ours, async (s) => {
      await s.createMailbox(['Lists']);
      await s.saveMessages(['Lists'], mail.slice(0, 3).map((m) => req(m, { flags: ['\\Seen'] })));
      const before = readFileSync(join(root, 'Lists'));
      await s.saveMessages(['Lists'], mail.slice(3).map((m, i) => req(m, { uid: 10 + i, keywords: ['later'] })));
      const after = readFileSync(join(root, 'Lists'));
      assert.ok(after.length > before.length, 'appended');
      sizes.push(before.length, after.length);
      await s.updateFlags(['Lists'], [
        { uid: 1, flags: ['\\Answered', '\\Flagged'], keywords: ['brand-new', '$Label3'] },
        { uid: 11, flags: ['\\Deleted'], keywords: [] },
      ]);
      assert.equal(readFileSync(join(root, 'Lists')).length, after.length, 'the flag change was written in place');
    });
    mkdirSync(join(scratch, 'inplace', 'dovecot-index'));
    await grantDovecotAccess(join(scratch, 'inplace'));
    const dv = `mbox:${root}:INBOX=${join(root, 'inbox')}:INDEX=${join(scratch, 'inplace', 'dovecot-index')}`;
    await withStore(ours, (s) => assertSameAsDoveadm(dv, s, ['Lists'], false));
    const fetched = await doveadmFetch(d, 'alice', dv, 'Lists');
    assert.deepEqual(fetched.map((m) => m.uid), [1, 2, 3, 10, 11, 12, 13, 14]);
    assert.deepEqual(fetched[0]!.flags.sort(), ['$Label3', '\\Answered', '\\Flagged', 'brand-new'].sort());
  });
});
