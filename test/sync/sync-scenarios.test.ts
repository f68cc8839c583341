/**
 * Two-way sync scenarios in the style of isync's run-tests: every scenario starts from two
 * Maildirs that were synced together (the common state comes out of runSync itself), then
 * changes side A and side B, runs runSync and checks the end state of both sides, and finally
 * runs sync again (fast, then full) and checks that nothing more happens.
 *
 * Each two-way scenario runs in both directions: `A→B` passes A first (A is the master),
 * `B→A` passes B first. The end state must be the same either way, except where the
 * master-wins tie rule applies; those scenarios assert that the master's version wins.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailboxName, MailStore, MessageMeta, SavedMessage, SystemFlag } from '../../src/storage/store.js';
import { runSync, type SyncOptions, type SyncResult } from '../../src/sync/sync.js';
import type { MergeMode } from '../../src/sync/twoway-plan.js';
import { message, readAll, req } from '../contract/store-contract.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const INBOX: MailboxName = ['INBOX'];
type Direction = 'A→B' | 'B→A';

function openMaildir(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

/** The directory of a mailbox in a Maildir++ root (plain ASCII names only). */
function mailboxDir(root: string, name: MailboxName): string {
  return name.length === 1 && name[0] === 'INBOX' ? root : join(root, `.${name.join('.')}`);
}

/** The file of a message whose basename is its GUID (true for everything these tests save or sync). */
function messageFile(root: string, name: MailboxName, guid: string): string {
  for (const sub of ['cur', 'new']) {
    const dir = join(mailboxDir(root, name), sub);
    const hit = readdirSync(dir).find((f) => f === guid || f.startsWith(`${guid}:`));
    if (hit) return join(dir, hit);
  }
  throw new Error(`no file for ${guid} in ${name.join('/')}`);
}

/** What a MUA does to change flags: rename `base:2,XY` to `base:2,<letters>`. */
function muaSetFlags(root: string, name: MailboxName, guid: string, letters: string): void {
  const path = messageFile(root, name, guid);
  const dir = join(path, '..', '..', 'cur');
  const base = path.slice(path.lastIndexOf('/') + 1).split(':')[0]!;
  renameSync(path, join(dir, `${base}:2,${[...letters].sort().join('')}`));
}

async function save(s: MailStore, box: MailboxName, subject: string, opts: { flags?: SystemFlag[]; keywords?: string[]; uid?: number } = {}): Promise<SavedMessage> {
  const [saved] = await s.saveMessages(box, [req(message(subject), { flags: opts.flags ?? [], keywords: opts.keywords ?? [], ...(opts.uid ? { uid: opts.uid } : {}) })]);
  return saved!;
}

async function find(s: MailStore, box: MailboxName, guid: string): Promise<MessageMeta | undefined> {
  return (await s.getMessages(box)).messages.find((m) => m.guid === guid);
}

async function must(s: MailStore, box: MailboxName, guid: string): Promise<MessageMeta> {
  const m = await find(s, box, guid);
  assert.ok(m, `${s.location}: ${box.join('/')} should hold ${guid}`);
  return m;
}

async function bodyOf(s: MailStore, box: MailboxName, guid: string): Promise<string> {
  const m = await must(s, box, guid);
  return (await readAll(await s.openMessage(box, m.uid))).toString('utf8');
}

async function guidsOf(s: MailStore, box: MailboxName): Promise<string[]> {
  return (await s.getMessages(box)).messages.map((m) => m.guid).sort();
}

async function names(s: MailStore): Promise<string[]> {
  return (await s.listMailboxes()).mailboxes.map((m) => m.name.join('/')).sort();
}

async function statusOf(s: MailStore, box: MailboxName) {
  const st = await s.mailboxStatus(box);
  assert.ok(st, `${s.location}: mailbox ${box.join('/')} should exist`);
  return st;
}

const sorted = (xs: readonly string[]) => [...xs].sort();

function flagsOf(m: MessageMeta): { flags: string[]; keywords: string[] } {
  return { flags: sorted(m.flags), keywords: sorted(m.keywords) };
}

/** Everything two converged stores must agree on, bodies included (as hashes). */
async function snapshot(s: MailStore): Promise<unknown[]> {
  const list = await s.listMailboxes();
  const out: unknown[] = [];
  for (const box of [...list.mailboxes].sort((x, y) => x.name.join('/').localeCompare(y.name.join('/')))) {
    const { messages } = await s.getMessages(box.name);
    const msgs = [];
    for (const m of messages) {
      const body = await readAll(await s.openMessage(box.name, m.uid));
      msgs.push({ uid: m.uid, guid: m.guid, ...flagsOf(m), size: m.size, body: createHash('sha1').update(body).digest('hex') });
    }
    out.push({ name: box.name.join('/'), guid: box.guid, uidValidity: box.uidValidity, uidNext: box.uidNext, subscribed: box.subscribed, msgs });
  }
  return out;
}

function assertNoop(r: SyncResult, what: string): void {
  assert.deepEqual(
    { treeActions: r.treeActions, saved: r.saved, flagUpdates: r.flagUpdates, expunged: r.expunged, changedDuringSync: r.changedDuringSync },
    { treeActions: 0, saved: 0, flagUpdates: 0, expunged: 0, changedDuringSync: false },
    `${what} should change nothing`,
  );
}

/** Waits until the wall clock's second has moved past `since` (list-change timestamps are in seconds). */
async function afterSecond(since = Math.floor(Date.now() / 1000)): Promise<void> {
  while (Math.floor(Date.now() / 1000) <= since) await new Promise((r) => setTimeout(r, 20));
}

// ---------------------------------------------------------------------------------------------
// The harness

interface Env {
  A: MaildirStore;
  B: MaildirStore;
  rootA: string;
  rootB: string;
  direction: Direction;
  /** The store passed first to runSync in this direction. */
  master: MaildirStore;
  /** The store passed second. */
  slave: MaildirStore;
}

interface ScenarioDef<C, D> {
  name: string;
  mode?: MergeMode;
  /** Options for the sync under test (the common-state sync and the no-op checks use their own). */
  sync?: Pick<SyncOptions, 'full'>;
  /** Defaults to both; a one-way merge has a source and a destination by definition. */
  directions?: Direction[];
  /** Marks the scenario as a known bug outside the files this suite may fix. */
  todo?: string;
  /** Builds the state both sides share; the harness syncs it before `change`. */
  common(env: Env): Promise<C>;
  /** Changes made independently on A and B after the common sync; returns what `expect` needs. */
  change(env: Env, c: C): Promise<D>;
  /** The expected end state after one sync. */
  expect(env: Env, c: C & D, r: SyncResult): Promise<void>;
}

interface Scenario {
  name: string;
  mode: MergeMode;
  directions: Direction[];
  todo?: string;
  run(env: Env): Promise<void>;
}

function scenario<C extends object, D extends object | void = void>(def: ScenarioDef<C, D>): Scenario {
  const mode = def.mode ?? 'twoway';
  return {
    name: def.name,
    mode,
    directions: def.directions ?? ['A→B', 'B→A'],
    ...(def.todo ? { todo: def.todo } : {}),
    async run(env) {
      const sync = (opts: SyncOptions = {}) => runSync(env.master, env.slave, opts);
      const c = await def.common(env);
      const r0 = await sync();
      assert.equal(r0.changedDuringSync, false, 'the common-state sync completes');
      assert.deepEqual(await snapshot(env.B), await snapshot(env.A), 'the common state is the same on both sides');

      const d = await def.change(env, c);
      const sourceBefore = mode === 'oneway' ? await snapshot(env.master) : undefined;
      const r = await sync({ mode, ...def.sync });
      assert.equal(r.changedDuringSync, false, 'nothing changed during the sync under test');
      await def.expect(env, { ...c, ...(d as D) } as C & D, r);
      if (mode === 'twoway') {
        assert.deepEqual(await snapshot(env.B), await snapshot(env.A), 'both sides end equal');
      } else {
        assert.deepEqual(await snapshot(env.master), sourceBefore, 'a one-way merge never touches the source');
      }

      const settled = [await snapshot(env.A), await snapshot(env.B)];
      assertNoop(await sync({ mode }), 'a second sync');
      assertNoop(await sync({ mode, full: true }), 'a second full sync');
      assert.deepEqual([await snapshot(env.A), await snapshot(env.B)], settled, 'the repeated syncs left both sides alone');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const scenarios: Scenario[] = [
  scenario({
    name: 'both sides get new mail (in different mailboxes, so no UIDs clash): each arrives with its UID',
    async common({ A }) {
      await A.createMailbox(['Work']);
      return { m1: await save(A, INBOX, 'common') };
    },
    async change({ A, B }) {
      await save(A, INBOX, 'new on A 1', { flags: ['\\Seen'] });
      await save(A, INBOX, 'new on A 2', { keywords: ['todo'] });
      await save(B, ['Work'], 'new on B 1', { flags: ['\\Flagged'] });
      await save(B, ['Work'], 'new on B 2');
    },
    async expect({ A, B }, { m1 }) {
      for (const s of [A, B]) {
        const inbox = (await s.getMessages(INBOX)).messages;
        assert.deepEqual(inbox.map((m) => m.uid), [1, 2, 3]);
        assert.equal(inbox[0]!.guid, m1.guid);
        assert.deepEqual(flagsOf(inbox[1]!), { flags: ['\\Seen'], keywords: [] });
        assert.deepEqual(flagsOf(inbox[2]!), { flags: [], keywords: ['todo'] });
        const work = (await s.getMessages(['Work'])).messages;
        assert.deepEqual(work.map((m) => m.uid), [1, 2]);
        assert.deepEqual(flagsOf(work[0]!).flags, ['\\Flagged']);
        assert.match(await bodyOf(s, ['Work'], work[1]!.guid), /Subject: new on B 2/);
        assert.match(await bodyOf(s, INBOX, inbox[2]!.guid), /Subject: new on A 2/);
      }
    },
  }),

  scenario({
    name: 'UID collision: both sides save a different message as UID 2; both get new UIDs above both UIDNEXTs, nothing is lost',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'common', { flags: ['\\Seen'] }) };
    },
    async change({ A, B, rootA }) {
      const a1 = await save(A, INBOX, 'new on A', { flags: ['\\Flagged'] });
      const b1 = await save(B, INBOX, 'new on B', { keywords: ['b'] });
      const b2 = await save(B, INBOX, 'second new on B');
      assert.equal(a1.uid, 2);
      assert.equal(b1.uid, 2);
      assert.equal(b2.uid, 3);
      const uidNext = Math.max((await statusOf(A, INBOX)).uidNext, (await statusOf(B, INBOX)).uidNext);
      return { a1, b1, b2, uidNext, a1Inode: statSync(messageFile(rootA, INBOX, a1.guid)).ino };
    },
    async expect({ A, B, rootA }, { m1, a1, b1, b2, uidNext, a1Inode }) {
      const curA = readdirSync(join(rootA, 'cur'));
      assert.equal(curA.length, 4, 'the renumbered original is gone');
      assert.ok(curA.some((f) => statSync(join(rootA, 'cur', f)).ino === a1Inode), 'renumbering on A linked the file instead of rewriting it');
      const uidsOn = async (s: MailStore) => Object.fromEntries((await s.getMessages(INBOX)).messages.map((m) => [m.guid, m.uid]));
      const [ua, ub] = [await uidsOn(A), await uidsOn(B)];
      assert.deepEqual(ub, ua, 'the same UIDs on both sides');
      assert.deepEqual(Object.keys(ua).sort(), [m1.guid, a1.guid, b1.guid, b2.guid].sort(), 'all four messages on both sides');
      assert.equal(ua[m1.guid], 1, 'the common message keeps its UID');
      assert.equal(ua[b2.guid], 3, 'a new message whose UID is free on the other side keeps it');
      for (const g of [a1.guid, b1.guid]) assert.ok(ua[g]! >= uidNext, `the clashing message ${g} gets a UID at or above both UIDNEXTs (${uidNext}), got ${ua[g]}`);
      assert.notEqual(ua[a1.guid], ua[b1.guid]);
      for (const s of [A, B]) {
        assert.match(await bodyOf(s, INBOX, a1.guid), /Subject: new on A/);
        assert.match(await bodyOf(s, INBOX, b1.guid), /Subject: new on B/);
        assert.deepEqual(flagsOf(await must(s, INBOX, a1.guid)), { flags: ['\\Flagged'], keywords: [] });
        assert.deepEqual(flagsOf(await must(s, INBOX, b1.guid)), { flags: [], keywords: ['b'] });
        assert.ok((await statusOf(s, INBOX)).uidNext > Math.max(...Object.values(ua)));
      }
    },
  }),

  scenario({
    name: 'a message saved and expunged on B before A saw it: A\'s UIDNEXT is raised past its UID all the same',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'common') };
    },
    async change({ B }) {
      const gone = await save(B, INBOX, 'short-lived');
      await B.expunge(INBOX, [gone.uid]);
      return { gone };
    },
    async expect({ A, B }, { gone }) {
      for (const s of [A, B]) {
        assert.equal(await find(s, INBOX, gone.guid), undefined);
        assert.equal((await statusOf(s, INBOX)).uidNext, gone.uid + 1, `${s.location}: UID ${gone.uid} is used up on both sides`);
      }
    },
  }),

  scenario({
    name: 'expunge on A, flag change on B: the deletion wins',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'doomed'), m2: await save(A, INBOX, 'kept', { flags: ['\\Seen'] }) };
    },
    async change({ A, B }, { m1 }) {
      await A.expunge(INBOX, [m1.uid]);
      await B.updateFlags(INBOX, [{ uid: m1.uid, flags: ['\\Flagged', '\\Seen'], keywords: ['important'] }]);
    },
    async expect({ A, B }, { m1, m2 }, r) {
      for (const s of [A, B]) {
        assert.equal(await find(s, INBOX, m1.guid), undefined, `${s.location}: the expunged message is gone`);
        assert.deepEqual(flagsOf(await must(s, INBOX, m2.guid)).flags, ['\\Seen']);
      }
      assert.equal(r.expunged, 1);
      assert.equal(r.saved, 0, 'nothing is copied back');
    },
  }),

  scenario({
    name: 'flag conflict: both sides changed the same message since the last sync; each flag follows the side that changed it',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'contested', { flags: ['\\Seen'], keywords: ['old'] }) };
    },
    async change({ A, B }, { m1 }) {
      await A.updateFlags(INBOX, [{ uid: m1.uid, flags: ['\\Seen', '\\Flagged'], keywords: ['old', 'fromA'] }]);
      await B.updateFlags(INBOX, [{ uid: m1.uid, flags: ['\\Answered'], keywords: ['fromB'] }]);
    },
    async expect({ A, B }, { m1 }) {
      // Base {\Seen; old}: A added \Flagged and fromA, B removed \Seen and old and added \Answered and fromB.
      const want = { flags: ['\\Answered', '\\Flagged'], keywords: ['fromA', 'fromB'] };
      for (const s of [A, B]) assert.deepEqual(flagsOf(await must(s, INBOX, m1.guid)), want);
    },
  }),

  scenario({
    name: 'only one side changed a message\'s flags: that side wins in both directions',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'one', { flags: ['\\Seen'] }), m2: await save(A, INBOX, 'two', { flags: ['\\Seen'], keywords: ['k'] }) };
    },
    async change({ A, B }, { m1, m2 }) {
      await A.updateFlags(INBOX, [{ uid: m1.uid, flags: ['\\Seen', '\\Flagged'], keywords: ['a'] }]);
      await B.updateFlags(INBOX, [{ uid: m2.uid, flags: ['\\Answered'], keywords: [] }]);
    },
    async expect({ A, B }, { m1, m2 }, r) {
      for (const s of [A, B]) {
        assert.deepEqual(flagsOf(await must(s, INBOX, m1.guid)), { flags: ['\\Flagged', '\\Seen'], keywords: ['a'] });
        assert.deepEqual(flagsOf(await must(s, INBOX, m2.guid)), { flags: ['\\Answered'], keywords: [] });
      }
      assert.equal(r.flagUpdates, 2);
    },
  }),

  scenario({
    name: 'a MUA changes flags by renaming the file on B: B\'s flags win in both directions',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'read me'), m2: await save(A, INBOX, 'untouched', { flags: ['\\Flagged'] }) };
    },
    async change({ rootB }, { m1 }) {
      muaSetFlags(rootB, INBOX, m1.guid, 'RS');
    },
    async expect({ A, B }, { m1, m2 }) {
      for (const s of [A, B]) {
        assert.deepEqual(flagsOf(await must(s, INBOX, m1.guid)).flags, ['\\Answered', '\\Seen']);
        assert.deepEqual(flagsOf(await must(s, INBOX, m2.guid)).flags, ['\\Flagged']);
      }
    },
  }),

  scenario({
    name: 'keywords: added on A to one message, removed on B from another: both changes apply',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'one', { keywords: ['work'] }), m2: await save(A, INBOX, 'two', { keywords: ['work'] }) };
    },
    async change({ A, B }, { m1, m2 }) {
      await A.updateFlags(INBOX, [{ uid: m1.uid, flags: [], keywords: ['work', 'urgent'] }]);
      await B.updateFlags(INBOX, [{ uid: m2.uid, flags: [], keywords: [] }]);
    },
    async expect({ A, B }, { m1, m2 }) {
      for (const s of [A, B]) {
        assert.deepEqual(flagsOf(await must(s, INBOX, m1.guid)).keywords, ['urgent', 'work']);
        assert.deepEqual(flagsOf(await must(s, INBOX, m2.guid)).keywords, []);
      }
    },
  }),

  scenario({
    name: 'keywords: one added on A and another removed on B on the same message: both changes apply',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'one', { keywords: ['work', 'home'] }) };
    },
    async change({ A, B }, { m1 }) {
      await A.updateFlags(INBOX, [{ uid: m1.uid, flags: [], keywords: ['work', 'home', 'urgent'] }]);
      await B.updateFlags(INBOX, [{ uid: m1.uid, flags: [], keywords: ['home'] }]);
    },
    async expect({ A, B }, { m1 }) {
      for (const s of [A, B]) assert.deepEqual(flagsOf(await must(s, INBOX, m1.guid)).keywords, ['home', 'urgent']);
    },
  }),

  scenario({
    name: 'keywords beyond the 26 a filename can carry: 30 travel, and removing the 30th on B travels too',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'tagged', { keywords: Array.from({ length: 30 }, (_, i) => `kw${i}`) }) };
    },
    async change({ B }, { m1 }) {
      await B.updateFlags(INBOX, [{ uid: m1.uid, flags: ['\\Seen'], keywords: Array.from({ length: 29 }, (_, i) => `kw${i}`) }]);
    },
    async expect({ A, B }, { m1 }) {
      for (const s of [A, B]) {
        const m = await must(s, INBOX, m1.guid);
        assert.deepEqual(flagsOf(m), { flags: ['\\Seen'], keywords: sorted(Array.from({ length: 29 }, (_, i) => `kw${i}`)) });
      }
    },
  }),

  ...[false, true].map((full) =>
    scenario({
      name: `a MUA deletes a file on A between runs: the message is expunged on B, not copied back${full ? ' (full sync)' : ''}`,
      sync: { full },
      async common({ A }) {
        return { m1: await save(A, INBOX, 'deleted by a MUA'), m2: await save(A, INBOX, 'kept') };
      },
      async change({ rootA, B }, { m1 }) {
        unlinkSync(messageFile(rootA, INBOX, m1.guid));
        await B.updateFlags(INBOX, [{ uid: m1.uid, flags: ['\\Seen'], keywords: [] }]);
      },
      async expect({ A, B }, { m1, m2 }, r) {
        for (const s of [A, B]) assert.deepEqual(await guidsOf(s, INBOX), [m2.guid]);
        assert.equal(r.saved, 0);
        assert.equal(r.expunged, 1);
      },
    }),
  ),

  scenario({
    name: 'a delivery agent drops mail into new/ on B: it arrives on A with the same UID',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'old') };
    },
    async change({ rootB }) {
      writeFileSync(join(rootB, 'new', '1700000000.M1P1.mda'), message('delivered'));
    },
    async expect({ A, B }) {
      for (const s of [A, B]) {
        const { messages } = await s.getMessages(INBOX);
        assert.deepEqual(messages.map((m) => m.uid), [1, 2]);
        assert.equal(messages[1]!.guid, '1700000000.M1P1.mda');
        assert.match(await bodyOf(s, INBOX, messages[1]!.guid), /Subject: delivered/);
      }
    },
  }),

  scenario({
    name: 'a folder renamed on A while B gets new mail in it: renamed on B, the new mail lands in the renamed folder on A',
    async common({ A }) {
      await A.createMailbox(['Work']);
      const w1 = await save(A, ['Work'], 'work 1');
      return { w1, guid: (await statusOf(A, ['Work'])).guid };
    },
    async change({ A, B }) {
      await A.renameMailbox(['Work'], ['Archive']);
      return { w2: await save(B, ['Work'], 'work 2 (new on B)') };
    },
    async expect({ A, B }, { w1, w2, guid }, r) {
      for (const s of [A, B]) {
        assert.deepEqual(await names(s), ['Archive', 'INBOX'], `${s.location}: only the new name exists`);
        assert.equal((await statusOf(s, ['Archive'])).guid, guid, 'the mailbox keeps its GUID (a rename, not a re-create)');
        assert.deepEqual(await guidsOf(s, ['Archive']), sorted([w1.guid, w2.guid]));
        assert.equal((await must(s, ['Archive'], w2.guid)).uid, 2);
      }
      assert.equal(r.saved, 1, 'only the new message is copied, not the renamed folder');
    },
  }),

  scenario({
    // tree-twoway.ts: a delete logged on one side deletes the GUID on the other "unless it was
    // renamed or created there after the delete"; a rename in the same second is not after it.
    name: 'a folder renamed on B, then deleted on A (same second or later): the delete wins for the mail A knew; mail A never saw survives',
    async common({ A }) {
      await A.createMailbox(['Old']);
      await save(A, ['Old'], 'old 1');
      return {};
    },
    async change({ A, B }) {
      await B.renameMailbox(['Old'], ['Renamed']);
      const fresh = await save(B, ['Renamed'], 'new in the renamed folder');
      await A.deleteMailbox(['Old']);
      return { fresh };
    },
    async expect({ A, B }, { fresh }) {
      for (const s of [A, B]) {
        assert.deepEqual(await names(s), ['INBOX', 'Renamed']);
        assert.deepEqual(await guidsOf(s, ['Renamed']), [fresh.guid]);
      }
    },
  }),

  scenario({
    name: 'a folder deleted on A, then renamed on B a second later: the later rename wins, the folder comes back on A under its new name',
    async common({ A }) {
      await A.createMailbox(['Old']);
      const o1 = await save(A, ['Old'], 'old 1', { flags: ['\\Seen'] });
      return { o1, guid: (await statusOf(A, ['Old'])).guid };
    },
    async change({ A, B }) {
      await A.deleteMailbox(['Old']);
      await afterSecond();
      await B.renameMailbox(['Old'], ['Renamed']);
      return { o2: await save(B, ['Renamed'], 'new in the renamed folder') };
    },
    async expect({ A, B }, { o1, o2, guid }) {
      for (const s of [A, B]) {
        assert.deepEqual(await names(s), ['INBOX', 'Renamed']);
        assert.equal((await statusOf(s, ['Renamed'])).guid, guid);
        assert.deepEqual(await guidsOf(s, ['Renamed']), sorted([o1.guid, o2.guid]));
        assert.deepEqual(flagsOf(await must(s, ['Renamed'], o1.guid)).flags, ['\\Seen']);
      }
    },
  }),

  scenario({
    name: 'a folder renamed on A to a name B gave a new folder: both kept, the larger GUID keeps the name, the other moves to name-<guid> on both sides',
    async common({ A }) {
      await A.createMailbox(['F1']);
      return { f1: await save(A, ['F1'], 'in F1'), g1: (await statusOf(A, ['F1'])).guid };
    },
    async change({ A, B }) {
      await A.renameMailbox(['F1'], ['F2']);
      const g2 = (await B.createMailbox(['F2'])).guid;
      return { g2, f2: await save(B, ['F2'], 'in B\'s own F2') };
    },
    async expect({ A, B }, { f1, g1, f2, g2 }) {
      const [keeper, moved] = g1 > g2 ? [g1, g2] : [g2, g1];
      const aside = `F2-${moved.slice(0, 8)}`;
      for (const s of [A, B]) {
        assert.deepEqual(await names(s), sorted(['INBOX', 'F2', aside]));
        assert.equal((await statusOf(s, ['F2'])).guid, keeper);
        assert.equal((await statusOf(s, [aside])).guid, moved);
        const mailOf = (g: string) => (g === g1 ? f1.guid : f2.guid);
        assert.deepEqual(await guidsOf(s, ['F2']), [mailOf(keeper)]);
        assert.deepEqual(await guidsOf(s, [aside]), [mailOf(moved)]);
      }
    },
  }),

  scenario({
    name: 'two folders swap names on A (through a temporary name): B swaps them too, mail follows the GUIDs',
    async common({ A }) {
      await A.createMailbox(['X']);
      await A.createMailbox(['Y']);
      return {
        x: await save(A, ['X'], 'x'),
        y: await save(A, ['Y'], 'y'),
        gx: (await statusOf(A, ['X'])).guid,
        gy: (await statusOf(A, ['Y'])).guid,
      };
    },
    async change({ A }) {
      await A.renameMailbox(['X'], ['T']);
      await A.renameMailbox(['Y'], ['X']);
      await A.renameMailbox(['T'], ['Y']);
    },
    async expect({ A, B }, { x, y, gx, gy }) {
      for (const s of [A, B]) {
        assert.deepEqual(await names(s), ['INBOX', 'X', 'Y']);
        assert.equal((await statusOf(s, ['Y'])).guid, gx);
        assert.equal((await statusOf(s, ['X'])).guid, gy);
        assert.deepEqual(await guidsOf(s, ['Y']), [x.guid]);
        assert.deepEqual(await guidsOf(s, ['X']), [y.guid]);
      }
    },
  }),

  scenario({
    name: 'a folder deleted on A and made again under the same name: deleted on B, the new one replaces it, the old mail stays deleted',
    async common({ A }) {
      await A.createMailbox(['X']);
      return { old: await save(A, ['X'], 'old') };
    },
    async change({ A }) {
      await A.deleteMailbox(['X']);
      const guid = (await A.createMailbox(['X'])).guid;
      return { guid, fresh: await save(A, ['X'], 'new') };
    },
    async expect({ A, B }, { guid, fresh }) {
      for (const s of [A, B]) {
        assert.deepEqual(await names(s), ['INBOX', 'X']);
        assert.equal((await statusOf(s, ['X'])).guid, guid);
        assert.deepEqual(await guidsOf(s, ['X']), [fresh.guid], `${s.location}: only the new folder's mail`);
      }
    },
  }),

  scenario({
    name: 'a folder created on both sides with the same name: one mailbox, same GUID (the larger), messages of both kept',
    async common() {
      return {};
    },
    async change({ A, B }) {
      const ga = (await A.createMailbox(['Lists'])).guid;
      const gb = (await B.createMailbox(['Lists'])).guid;
      const la = await save(A, ['Lists'], 'list mail on A');
      const lb = await save(B, ['Lists'], 'list mail on B');
      return { ga, gb, la, lb };
    },
    async expect({ A, B }, { ga, gb, la, lb }) {
      const [sa, sb] = [await statusOf(A, ['Lists']), await statusOf(B, ['Lists'])];
      assert.equal(sa.guid, sb.guid);
      assert.equal(sa.guid, ga > gb ? ga : gb, 'the numerically larger GUID wins');
      assert.equal(sa.uidValidity, sb.uidValidity);
      for (const s of [A, B]) {
        assert.deepEqual(await names(s), ['INBOX', 'Lists']);
        assert.deepEqual(await guidsOf(s, ['Lists']), sorted([la.guid, lb.guid]));
      }
    },
  }),

  scenario({
    name: 'a folder created on both sides with the same name and different UIDVALIDITYs: one mailbox, messages of both kept',
    async common() {
      return {};
    },
    async change({ A, B }) {
      await A.createMailbox(['Lists'], { uidValidity: 1000 });
      await B.createMailbox(['Lists'], { uidValidity: 2000 });
      const la = await save(A, ['Lists'], 'list mail on A', { flags: ['\\Seen'] });
      const lb1 = await save(B, ['Lists'], 'list mail on B', { keywords: ['x'] });
      const lb2 = await save(B, ['Lists'], 'more list mail on B');
      return { la, lb: [lb1, lb2] };
    },
    async expect({ A, B }, { la, lb }) {
      const [sa, sb] = [await statusOf(A, ['Lists']), await statusOf(B, ['Lists'])];
      assert.equal(sa.guid, sb.guid);
      assert.equal(sa.uidValidity, sb.uidValidity);
      assert.equal(sa.uidValidity, 2000, 'the side with more messages keeps its UIDVALIDITY');
      for (const s of [A, B]) {
        assert.deepEqual(await guidsOf(s, ['Lists']), sorted([la.guid, ...lb.map((m) => m.guid)]));
        assert.deepEqual(flagsOf(await must(s, ['Lists'], la.guid)).flags, ['\\Seen']);
        assert.deepEqual(flagsOf(await must(s, ['Lists'], lb[0]!.guid)).keywords, ['x']);
      }
    },
  }),

  scenario({
    name: 'UIDVALIDITY changed on A (messages kept): messages of both sides kept, UIDVALIDITY equal',
    async common({ A }) {
      return {
        m1: await save(A, INBOX, 'one', { flags: ['\\Seen'] }),
        m2: await save(A, INBOX, 'two', { keywords: ['k'] }),
        uidValidity: (await statusOf(A, INBOX)).uidValidity,
      };
    },
    async change({ A, B }, { uidValidity }) {
      await A.updateMailbox(INBOX, { uidValidity: uidValidity + 1000 });
      const a3 = await save(A, INBOX, 'new on A');
      const b3 = await save(B, INBOX, 'new on B');
      return { a3, b3 };
    },
    async expect({ A, B, master }, { m1, m2, uidValidity, a3, b3 }) {
      const [sa, sb] = [await statusOf(A, INBOX), await statusOf(B, INBOX)];
      assert.equal(sa.uidValidity, sb.uidValidity);
      // Equal message counts: the master keeps its UIDVALIDITY.
      assert.equal(sa.uidValidity, master === A ? uidValidity + 1000 : uidValidity);
      for (const s of [A, B]) {
        assert.deepEqual(await guidsOf(s, INBOX), sorted([m1.guid, m2.guid, a3.guid, b3.guid]));
        assert.deepEqual(flagsOf(await must(s, INBOX, m1.guid)).flags, ['\\Seen']);
        assert.deepEqual(flagsOf(await must(s, INBOX, m2.guid)).keywords, ['k']);
        assert.match(await bodyOf(s, INBOX, b3.guid), /Subject: new on B/);
      }
    },
  }),

  scenario({
    name: 'UIDVALIDITY changed on A while B expunged a message: the proven expunge is not undone',
    async common({ A }) {
      return {
        m1: await save(A, INBOX, 'kept'),
        m2: await save(A, INBOX, 'expunged on B'),
        uidValidity: (await statusOf(A, INBOX)).uidValidity,
      };
    },
    async change({ A, B }, { m2, uidValidity }) {
      await A.updateMailbox(INBOX, { uidValidity: uidValidity + 1000 });
      await B.expunge(INBOX, [m2.uid]);
    },
    async expect({ A, B }, { m1 }) {
      for (const s of [A, B]) assert.deepEqual(await guidsOf(s, INBOX), [m1.guid], `${s.location}: the expunged message stays gone`);
    },
  }),

  scenario({
    name: 'subscriptions: A subscribes one folder, B unsubscribes another: both apply',
    async common({ A }) {
      await A.createMailbox(['X']);
      await A.createMailbox(['Y']);
      await A.setSubscribed(['Y'], true);
      return {};
    },
    async change({ A, B }) {
      await A.setSubscribed(['X'], true);
      await B.setSubscribed(['Y'], false);
    },
    async expect({ A, B }) {
      for (const s of [A, B]) {
        const subs = (await s.listMailboxes()).mailboxes.filter((m) => m.subscribed).map((m) => m.name.join('/'));
        assert.deepEqual(subs, ['X'], `${s.location}: X subscribed, Y not`);
      }
    },
  }),

  scenario({
    name: 'a one-way merge A→B, then a two-way sync: B\'s own new mail and flag changes still reach A',
    async common({ A }) {
      return { m1: await save(A, INBOX, 'read on B') };
    },
    async change({ A, B }, { m1 }) {
      const b1 = await save(B, INBOX, 'new on B');
      await B.updateFlags(INBOX, [{ uid: m1.uid, flags: ['\\Seen'], keywords: [] }]);
      const r = await runSync(A, B, { mode: 'oneway' });
      assert.equal(r.changedDuringSync, false);
      return { b1 };
    },
    async expect({ A, B }, { m1, b1 }) {
      for (const s of [A, B]) {
        assert.deepEqual(await guidsOf(s, INBOX), sorted([m1.guid, b1.guid]), `${s.location}: B's new mail is on both sides`);
        assert.deepEqual(flagsOf(await must(s, INBOX, m1.guid)).flags, ['\\Seen'], `${s.location}: B's flag change is kept`);
      }
    },
  }),

  scenario({
    name: 'one-way merge (sync -1): B gains A\'s mail, flags and folders; B\'s own mail and changes stay; nothing deleted in B; A untouched',
    mode: 'oneway',
    directions: ['A→B'],
    async common({ A }) {
      await A.createMailbox(['Gone']);
      await save(A, ['Gone'], 'in a folder A deletes');
      return {
        m1: await save(A, INBOX, 'flagged on A'),
        m2: await save(A, INBOX, 'expunged on A'),
        m3: await save(A, INBOX, 'flagged on B', { flags: ['\\Seen'] }),
      };
    },
    async change({ A, B }, { m1, m2, m3 }) {
      const a4 = await save(A, INBOX, 'new on A');
      const b4 = await save(B, INBOX, 'new on B');
      await A.updateFlags(INBOX, [{ uid: m1.uid, flags: ['\\Flagged'], keywords: ['fromA'] }]);
      await A.expunge(INBOX, [m2.uid]);
      await B.updateFlags(INBOX, [{ uid: m3.uid, flags: ['\\Answered'], keywords: [] }]);
      await A.deleteMailbox(['Gone']);
      await A.createMailbox(['Fresh']);
      const f1 = await save(A, ['Fresh'], 'in a new folder on A');
      return { a4, b4, f1 };
    },
    async expect({ B }, { m1, m2, m3, a4, b4, f1 }) {
      assert.deepEqual(await names(B), ['Fresh', 'Gone', 'INBOX']);
      assert.deepEqual(await guidsOf(B, INBOX), sorted([m1.guid, m2.guid, m3.guid, a4.guid, b4.guid]));
      assert.deepEqual(flagsOf(await must(B, INBOX, m1.guid)), { flags: ['\\Flagged'], keywords: ['fromA'] });
      assert.deepEqual(flagsOf(await must(B, INBOX, m3.guid)).flags, ['\\Answered'], 'B\'s own flag change stays');
      // Two messages claiming UID 4: both get new UIDs above both UIDNEXTs, in B only.
      assert.ok((await must(B, INBOX, b4.guid)).uid >= 5, 'B\'s clashing new mail gets a new UID');
      assert.ok((await must(B, INBOX, a4.guid)).uid >= 5, 'A\'s clashing new mail gets a UID above B\'s UIDNEXT');
      assert.deepEqual(await guidsOf(B, ['Fresh']), [f1.guid]);
      assert.equal((await guidsOf(B, ['Gone'])).length, 1);
    },
  }),
];

describe('two-way sync scenarios (Maildir ↔ Maildir)', () => {
  for (const sc of scenarios) {
    for (const direction of sc.directions) {
      it(`${sc.name} [${direction}]`, sc.todo ? { todo: sc.todo } : {}, async () => {
        const dir = await mkdtemp(join(tmpdir(), 'mailferry-scenario-'));
        const rootA = join(dir, 'a');
        const rootB = join(dir, 'b');
        const A = openMaildir(rootA);
        const B = openMaildir(rootB);
        const env: Env = { A, B, rootA, rootB, direction, master: direction === 'A→B' ? A : B, slave: direction === 'A→B' ? B : A };
        try {
          await sc.run(env);
        } finally {
          await A.close();
          await B.close();
          await rm(dir, { recursive: true, force: true });
        }
      });
    }
  }
});
