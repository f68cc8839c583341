/**
 * Changes other programs make to a Maildir between two scans (a MUA renaming files, a delivery
 * agent dropping mail, a user moving folders or deleting the change index) become changes
 * since the previous highest modseq, as Dovecot's index would report them to dsync.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { nextUidOf, parseUidlist } from '../../src/storage/maildir/uidlist.js';
import type { MailboxName, MessageMeta } from '../../src/storage/store.js';
import { message, readAll, req } from '../contract/store-contract.js';

const INBOX: MailboxName = ['INBOX'];

interface Env {
  root: string;
  store: MaildirStore;
  warnings: string[];
  /** Closes the current store and opens the same root again. */
  reopen(): Promise<MaildirStore>;
}

async function withMaildir(fn: (env: Env) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-ext-'));
  const root = join(dir, 'Maildir');
  const warnings: string[] = [];
  const open = () => MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: (m) => warnings.push(m) });
  const env: Env = {
    root,
    store: open(),
    warnings,
    async reopen() {
      await env.store.close();
      env.store = open();
      return env.store;
    },
  };
  try {
    await fn(env);
  } finally {
    await env.store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const flagsOf = (ms: MessageMeta[]) => ms.map((m) => [m.uid, m.flags] as const);

/** Sets the mtimes the scan fingerprint looks at to a whole second an hour ago. */
function age(dir: string): number {
  const t = Math.floor(Date.now() / 1000) - 3600;
  for (const f of ['new', 'cur', 'dovecot-uidlist', 'dovecot-keywords']) {
    try {
      utimesSync(join(dir, f), t, t);
    } catch {
      // dovecot-keywords exists only once a keyword was used
    }
  }
  return t;
}

describe('maildir: changes made by other programs', () => {
  it('flags added and removed by renaming files in cur/ are changes with new modseqs', () =>
    withMaildir(async ({ root, store }) => {
      const [a, b, c] = await store.saveMessages(INBOX, [
        req(message('a'), { guid: 'ma' }),
        req(message('b'), { guid: 'mb', flags: ['\\Flagged', '\\Seen'] }),
        req(message('c'), { guid: 'mc' }),
      ]);
      const before = await store.getMessages(INBOX);
      renameSync(join(root, 'cur/ma:2,'), join(root, 'cur/ma:2,S'));
      renameSync(join(root, 'cur/mb:2,FS'), join(root, 'cur/mb:2,F'));
      const after = await store.getMessages(INBOX, before.highestModseq);
      assert.equal(after.incremental, true);
      assert.deepEqual(flagsOf(after.messages), [
        [a!.uid, ['\\Seen']],
        [b!.uid, ['\\Flagged']],
      ]);
      assert.deepEqual(after.expunged, []);
      assert.ok(after.messages.every((m) => m.modseq > before.highestModseq));
      assert.ok(after.highestModseq > before.highestModseq);
      assert.equal(after.uidNext, before.uidNext);
      // Untouched message: same modseq as before.
      const all = await store.getMessages(INBOX);
      assert.equal(all.messages.find((m) => m.uid === c!.uid)!.modseq, before.messages.find((m) => m.uid === c!.uid)!.modseq);
    }));

  it('mail delivered into new/ and cur/ gets new UIDs; a move new/ -> cur/ is only a flag change', () =>
    withMaildir(async ({ root, store }) => {
      await store.saveMessages(INBOX, [req(message('old'), { guid: 'old1' })]);
      const before = await store.getMessages(INBOX);
      assert.equal(before.uidNext, 2);
      const inNew = '1700000100.M1P9.mx';
      const inCur = '1700000200.M2P9.mx';
      writeFileSync(join(root, 'new', inNew), message('delivered to new'));
      writeFileSync(join(root, 'cur', `${inCur}:2,S`), message('delivered to cur'));

      const after = await store.getMessages(INBOX, before.highestModseq);
      assert.equal(after.incremental, true);
      assert.deepEqual(
        after.messages.map((m) => [m.uid, m.guid, m.flags]),
        [
          [2, inNew, []],
          [3, inCur, ['\\Seen']],
        ],
      );
      assert.equal(after.uidNext, 4);
      const uidlist = readFileSync(join(root, 'dovecot-uidlist'), 'utf8');
      // Appended as Dovecot appends: the header's next UID stays, the lines carry the new UIDs.
      assert.match(uidlist, /^3 V\d+ N\d+ G[0-9a-f]{32}\n/);
      assert.equal(nextUidOf(parseUidlist(uidlist, 'dovecot-uidlist').uidlist), 4);
      assert.match(uidlist, new RegExp(`\\n2 :${inNew.replace(/\./g, '\\.')}\\n`));
      assert.match(uidlist, new RegExp(`\\n3 :${inCur.replace(/\./g, '\\.')}\\n`));
      assert.deepEqual(await readAll(await store.openMessage(INBOX, 2)), message('delivered to new'));
      assert.deepEqual(await readAll(await store.openMessage(INBOX, 3)), message('delivered to cur'));

      // A MUA reads it: new/X -> cur/X:2,S. Same UID, same GUID, only the flags changed.
      renameSync(join(root, 'new', inNew), join(root, 'cur', `${inNew}:2,S`));
      const moved = await store.getMessages(INBOX, after.highestModseq);
      assert.deepEqual(moved.messages.map((m) => [m.uid, m.guid, m.flags]), [[2, inNew, ['\\Seen']]]);
      assert.deepEqual(moved.expunged, []);
      assert.equal(moved.uidNext, 4);
      assert.deepEqual(await readAll(await store.openMessage(INBOX, 2)), message('delivered to new'));
    }));

  it('a file deleted from cur/ is expunged with its UID and GUID', () =>
    withMaildir(async ({ root, store }) => {
      const [x, y] = await store.saveMessages(INBOX, [req(message('x'), { guid: 'gx' }), req(message('y'), { guid: 'gy', flags: ['\\Seen'] })]);
      const before = await store.getMessages(INBOX);
      unlinkSync(join(root, 'cur/gy:2,S'));
      const after = await store.getMessages(INBOX, before.highestModseq);
      assert.equal(after.incremental, true);
      assert.deepEqual(after.messages, []);
      assert.deepEqual(after.expunged.map((e) => [e.uid, e.guid]), [[y!.uid, 'gy']]);
      assert.ok(after.expunged[0]!.modseq > before.highestModseq);
      assert.deepEqual((await store.getMessages(INBOX)).messages.map((m) => m.uid), [x!.uid]);
    }));

  it('keyword letters map through dovecot-keywords; keywords past z survive an external flag change', () =>
    withMaildir(async ({ root, store }) => {
      writeFileSync(join(root, 'dovecot-keywords'), '0 $Forwarded\n1 project-x\n');
      // 30 keywords: kw0..kw23 take letters c..z, kw24..kw29 can live only in the index.
      const many = Array.from({ length: 30 }, (_, i) => `kw${i}`);
      const [k, p] = await store.saveMessages(INBOX, [req(message('k'), { guid: 'mk', keywords: many }), req(message('p'), { guid: 'mp' })]);
      const letters = 'cdefghijklmnopqrstuvwxyz';
      assert.deepEqual(readdirSync(join(root, 'cur')).sort(), [`mk:2,${letters}`, 'mp:2,']);
      const before = await store.getMessages(INBOX);

      renameSync(join(root, 'cur/mp:2,'), join(root, 'cur/mp:2,ab'));
      // Add \Seen, drop z (kw23): kw24..kw29 have no letter and must stay.
      renameSync(join(root, `cur/mk:2,${letters}`), join(root, `cur/mk:2,S${letters.slice(0, -1)}`));
      const after = await store.getMessages(INBOX, before.highestModseq);
      assert.deepEqual(after.messages.map((m) => m.uid), [k!.uid, p!.uid]);
      const [mk, mp] = after.messages;
      assert.deepEqual(mk!.flags, ['\\Seen']);
      assert.deepEqual([...mk!.keywords].sort(), many.filter((x) => x !== 'kw23').sort());
      assert.ok(mk!.keywords.includes('kw27'));
      assert.deepEqual([...mp!.keywords].sort(), ['$Forwarded', 'project-x']);
      assert.deepEqual(mp!.flags, []);
      // And nothing flaps on the next read.
      const again = await store.getMessages(INBOX, after.highestModseq);
      assert.deepEqual(again.messages, []);
      assert.equal(again.highestModseq, after.highestModseq);
    }));

  it('a folder renamed on disk is a rename with the same GUID (slow and fast scan paths); removed, a delete', () =>
    withMaildir(async ({ root, store }) => {
      const created = await store.createMailbox(['A']);
      const saved = await store.saveMessages(['A'], [req(message('one'), { uid: 7 }), req(message('two'), { flags: ['\\Seen'] })]);
      await store.listMailboxes();

      renameSync(join(root, '.A'), join(root, '.B'));
      let list = await store.listMailboxes();
      assert.deepEqual(list.mailboxes.map((m) => m.name.join('/')).sort(), ['B', 'INBOX']);
      assert.equal(list.mailboxes.find((m) => m.name[0] === 'B')!.guid, created.guid);
      assert.deepEqual(list.changes.filter((c) => c.type === 'rename').map((c) => [c.guid, c.name, c.type === 'rename' && c.oldName]), [
        [created.guid, ['B'], ['A']],
      ]);
      const inB = await store.getMessages(['B']);
      assert.deepEqual(inB.messages.map((m) => [m.uid, m.guid]), saved.map((s) => [s.uid, s.guid]));
      assert.equal(inB.uidValidity, created.uidValidity);

      // Aged mtimes: the scan trusts its fingerprint, and must still notice the new name.
      age(join(root, '.B'));
      await store.listMailboxes();
      renameSync(join(root, '.B'), join(root, '.C'));
      list = await store.listMailboxes();
      assert.equal(list.mailboxes.find((m) => m.name[0] === 'C')?.guid, created.guid);
      assert.ok(list.changes.some((c) => c.type === 'rename' && c.guid === created.guid && c.oldName[0] === 'B' && c.name[0] === 'C'));
      assert.deepEqual((await store.getMessages(['C'])).messages.map((m) => m.uid), saved.map((s) => s.uid));
      assert.equal(await store.mailboxStatus(['B']), undefined);

      rmSync(join(root, '.C'), { recursive: true });
      list = await store.listMailboxes();
      assert.deepEqual(list.mailboxes.map((m) => m.name.join('/')), ['INBOX']);
      assert.deepEqual(list.changes.at(-1), { type: 'delete', guid: created.guid, name: ['C'], timestamp: list.changes.at(-1)!.timestamp });
    }));

  it('deleting the change index loses no message and keeps UIDs, UIDVALIDITY and GUIDs; old modseqs are not incremental', () =>
    withMaildir(async (env) => {
      const { root } = env;
      await env.store.createMailbox(['Work']);
      await env.store.saveMessages(INBOX, [req(message('i1'), { uid: 5, flags: ['\\Seen'] }), req(message('i2'), { keywords: ['todo'] })]);
      await env.store.saveMessages(['Work'], [req(message('w1'), { uid: 40 })]);
      const lists = async (s: MaildirStore) => {
        const l = await s.listMailboxes();
        return l.mailboxes.map((m) => ({ name: m.name, guid: m.guid, uidValidity: m.uidValidity, uidNext: m.uidNext, messages: m.messages }));
      };
      const statusBefore = await lists(env.store);
      const inboxBefore = await env.store.getMessages(INBOX);
      const workBefore = await env.store.getMessages(['Work']);

      await env.store.close();
      const removed = readdirSync(root).filter((f) => f.startsWith('mailferry.index.sqlite'));
      assert.ok(removed.includes('mailferry.index.sqlite'));
      for (const f of removed) rmSync(join(root, f));
      // Let the clock move past the old modseqs, as it has between any two real syncs.
      await new Promise((r) => setTimeout(r, 20));
      const store = await env.reopen();

      assert.deepEqual(await lists(store), statusBefore);
      const strip = (ms: MessageMeta[]) => ms.map(({ uid, guid, flags, keywords, size }) => ({ uid, guid, flags, keywords, size }));
      const inbox = await store.getMessages(INBOX, inboxBefore.highestModseq);
      assert.equal(inbox.incremental, false, 'a modseq from the deleted index cannot be answered incrementally');
      assert.deepEqual(strip(inbox.messages), strip(inboxBefore.messages));
      assert.equal(inbox.uidValidity, inboxBefore.uidValidity);
      assert.ok(inbox.highestModseq > inboxBefore.highestModseq);
      const work = await store.getMessages(['Work'], workBefore.highestModseq);
      assert.equal(work.incremental, false);
      assert.deepEqual(strip(work.messages), strip(workBefore.messages));
      assert.deepEqual(await readAll(await store.openMessage(['Work'], 40)), message('w1'));
    }));

  it(
    'deleting the change index right after many quick changes: old modseqs are still not incremental',
    {},
    () =>
      withMaildir(async (env) => {
        const saved = await env.store.saveMessages(INBOX, Array.from({ length: 100 }, (_, i) => req(message(`q${i}`))));
        for (let r = 0; r < 10; r++) {
          await env.store.updateFlags(INBOX, saved.map((m) => ({ uid: m.uid, flags: r % 2 ? [] : ['\\Seen'], keywords: [] })));
        }
        const before = await env.store.getMessages(INBOX);
        await env.store.close();
        for (const f of readdirSync(env.root).filter((x) => x.startsWith('mailferry.index.sqlite'))) rmSync(join(env.root, f));
        const after = await (await env.reopen()).getMessages(INBOX, before.highestModseq);
        assert.equal(after.incremental, false, `old highest ${before.highestModseq}, rebuilt highest ${after.highestModseq}`);
        assert.ok(after.highestModseq > before.highestModseq);
      }),
  );

  it('no change at all: a second read reports nothing and the same highest modseq', () =>
    withMaildir(async ({ root, store }) => {
      await store.saveMessages(INBOX, [req(message('s'), { keywords: ['k'] })]);
      writeFileSync(join(root, 'new', '1700000300.M3P9.mx'), message('left in new'));
      writeFileSync(join(root, 'cur', '1700000400.M4P9.mx:2,RS'), message('in cur'));
      const first = await store.getMessages(INBOX);
      assert.equal(first.messages.length, 3);
      for (const aged of [false, true]) {
        if (aged) {
          age(root);
          await store.getMessages(INBOX); // records the aged fingerprint
        }
        const second = await store.getMessages(INBOX, first.highestModseq);
        const third = await store.getMessages(INBOX, first.highestModseq);
        for (const r of [second, third]) {
          assert.equal(r.incremental, true);
          assert.deepEqual([r.messages, r.expunged], [[], []], `aged=${aged}`);
          assert.equal(r.highestModseq, first.highestModseq);
          assert.equal(r.uidNext, first.uidNext);
        }
      }
    }));

  it('mtime fast path: trusted for mtimes older than 2 s, and a later rename is still seen', () =>
    withMaildir(async ({ root, store }) => {
      const [a, b] = await store.saveMessages(INBOX, [req(message('a'), { guid: 'fa' }), req(message('b'), { guid: 'fb' })]);
      const t = age(root);
      const s1 = await store.mailboxStatus(INBOX);
      const s2 = await store.mailboxStatus(INBOX);
      assert.deepEqual(s2, s1);

      // Proof that the second read did not scan: a rename whose mtime is put back goes unseen.
      renameSync(join(root, 'cur/fa:2,'), join(root, 'cur/fa:2,S'));
      utimesSync(join(root, 'cur'), t, t);
      assert.deepEqual(await store.mailboxStatus(INBOX), s1);

      // An ordinary rename moves cur/'s mtime: the next status scans and sees both changes.
      renameSync(join(root, 'cur/fb:2,'), join(root, 'cur/fb:2,F'));
      const s3 = await store.mailboxStatus(INBOX);
      assert.ok(s3!.highestModseq > s1!.highestModseq);
      assert.equal(s3!.messages, 2);
      const changed = await store.getMessages(INBOX, s1!.highestModseq);
      assert.deepEqual(flagsOf(changed.messages), [
        [a!.uid, ['\\Seen']],
        [b!.uid, ['\\Flagged']],
      ]);
    }));

  it('mtime fast path: fresh mtimes are trusted only within one session, never across runs', () =>
    withMaildir(async (env) => {
      const { root } = env;
      const [a] = await env.store.saveMessages(INBOX, [req(message('a'), { guid: 'ra' })]);
      // A whole second at most 1 s ahead: "recent", and restorable exactly after a rename.
      const t = Math.ceil(Date.now() / 1000);
      utimesSync(join(root, 'cur'), t, t);
      const s1 = await env.store.mailboxStatus(INBOX);
      assert.deepEqual(await env.store.mailboxStatus(INBOX), s1);
      renameSync(join(root, 'cur/ra:2,'), join(root, 'cur/ra:2,R'));
      utimesSync(join(root, 'cur'), t, t);
      // The same process may miss a change made within the mtime tick of its own scan ...
      assert.deepEqual(await env.store.mailboxStatus(INBOX), s1);
      // ... but the next run never does: a fresh fingerprint is not persisted.
      const store = await env.reopen();
      const s2 = await store.mailboxStatus(INBOX);
      assert.ok(s2!.highestModseq > s1!.highestModseq, 'a change in the same mtime tick is found by the next run');
      assert.deepEqual(flagsOf((await store.getMessages(INBOX, s1!.highestModseq)).messages), [[a!.uid, ['\\Answered']]]);
    }));
});
