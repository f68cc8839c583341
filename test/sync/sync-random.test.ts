/**
 * Random two-way sync histories: fast-check builds sequences of changes on two Maildirs
 * (new mail with random flags and keywords, sometimes more than 26 distinct keywords; flag and
 * keyword changes through the store or by renaming files as a MUA does; expunges through the
 * store or by unlinking files; folder creates, renames and deletes) interleaved with runSync in
 * either direction, fast or full. After a final sync both sides must be equal, no message
 * may be lost that was neither expunged nor in a deleted folder, no expunged message may come
 * back, and syncing again must change nothing.
 *
 * Every history starts from two synced folders with mail. SYNC_RANDOM_RUNS (default 150, about
 * 15 s) and SYNC_RANDOM_SEED reproduce or widen a search; 150 runs is what it takes to find a
 * two-sided folder-name clash reliably.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import fc from 'fast-check';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { SYSTEM_FLAGS, type MailboxName, type MailStore, type SystemFlag } from '../../src/storage/store.js';
import { runSync, type SyncResult } from '../../src/sync/sync.js';
import { message, readAll, req } from '../contract/store-contract.js';
import { ForeignStore } from '../support/foreign-store.js';

type Side = 'A' | 'B';

type Op =
  | { kind: 'save'; side: Side; box: number; flags: SystemFlag[]; keywords: string[] }
  | { kind: 'flags'; side: Side; box: number; msg: number; flags: SystemFlag[]; viaDisk: boolean }
  | { kind: 'keywords'; side: Side; box: number; msg: number; keywords: string[] }
  | { kind: 'expunge'; side: Side; box: number; msg: number; viaDisk: boolean }
  | { kind: 'create'; side: Side; name: number }
  | { kind: 'rename'; side: Side; box: number; name: number }
  | { kind: 'delete'; side: Side; box: number }
  | { kind: 'sync'; reverse: boolean; full: boolean };

/** Few names, so that creates and renames on the two sides often want the same one. */
const FOLDERS = ['F0', 'F1', 'F2'];
const KEYWORDS = Array.from({ length: 32 }, (_, i) => `kw${i}`);
const LETTER: Record<SystemFlag, string> = { '\\Draft': 'D', '\\Flagged': 'F', '\\Answered': 'R', '\\Seen': 'S', '\\Deleted': 'T' };

const side = fc.constantFrom<Side>('A', 'B');
const index = fc.nat({ max: 20 });
const flags = fc.subarray([...SYSTEM_FLAGS]);
const keywords = fc.oneof(
  { weight: 5, arbitrary: fc.subarray(KEYWORDS, { maxLength: 4 }) },
  // More than a filename's 26 keyword letters: the rest live only in the change index.
  { weight: 1, arbitrary: fc.subarray(KEYWORDS, { minLength: 27 }) },
);

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('save' as const), side, box: index, flags, keywords }, { noNullPrototype: true }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flags' as const), side, box: index, msg: index, flags, viaDisk: fc.boolean() }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('keywords' as const), side, box: index, msg: index, keywords }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('expunge' as const), side, box: index, msg: index, viaDisk: fc.boolean() }, { noNullPrototype: true }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('sync' as const), reverse: fc.boolean(), full: fc.boolean() }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('create' as const), side, name: index }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rename' as const), side, box: index, name: index }, { noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), side, box: index }, { noNullPrototype: true }) },
);

function mailboxDir(root: string, name: MailboxName): string {
  return name.length === 1 && name[0] === 'INBOX' ? root : join(root, `.${name.join('.')}`);
}

const pick = <T>(xs: readonly T[], i: number): T | undefined => (xs.length === 0 ? undefined : xs[i % xs.length]);

/** What must hold at the end, whatever the sync decided along the way. */
interface Model {
  /** Every message ever saved, with the GUID of the mailbox it was saved into. */
  saved: Map<string, string>;
  /** Messages deliberately expunged (through the store or by unlinking the file). */
  expunged: Set<string>;
  /** Messages that were in a mailbox when it was deliberately deleted. */
  inDeleted: Set<string>;
  /** Mailbox GUIDs deliberately deleted. */
  deletedBoxes: Set<string>;
}

/** `byGuid`: a side hands out its own UIDs, so only what the messages are and hold can be equal. */
async function snapshot(s: MailStore, byGuid = false): Promise<unknown[]> {
  const out: unknown[] = [];
  const list = await s.listMailboxes();
  for (const box of [...list.mailboxes].sort((x, y) => x.name.join('/').localeCompare(y.name.join('/')))) {
    const { messages } = await s.getMessages(box.name);
    const msgs = [];
    for (const m of messages) {
      const body = await readAll(await s.openMessage(box.name, m.uid));
      msgs.push({ ...(byGuid ? {} : { uid: m.uid }), guid: m.guid, flags: [...m.flags].sort(), keywords: [...m.keywords].sort(), size: m.size, body: createHash('sha1').update(body).digest('hex') });
    }
    if (byGuid) msgs.sort((x, y) => (x.guid < y.guid ? -1 : 1));
    const uids = byGuid ? {} : { uidValidity: box.uidValidity, uidNext: box.uidNext };
    out.push({ name: box.name.join('/'), guid: box.guid, ...uids, subscribed: box.subscribed, msgs });
  }
  return out;
}

/** Message GUID -> mailbox names holding it. */
async function whereIs(s: MailStore): Promise<Map<string, string[]>> {
  const at = new Map<string, string[]>();
  for (const box of (await s.listMailboxes()).mailboxes) {
    for (const m of (await s.getMessages(box.name)).messages) at.set(m.guid, [...(at.get(m.guid) ?? []), box.name.join('/')]);
  }
  return at;
}

function assertNoop(r: SyncResult, what: string): void {
  assert.deepEqual(
    { treeActions: r.treeActions, saved: r.saved, flagUpdates: r.flagUpdates, expunged: r.expunged, changedDuringSync: r.changedDuringSync },
    { treeActions: 0, saved: 0, flagUpdates: 0, expunged: 0, changedDuringSync: false },
    `${what} should change nothing`,
  );
}

async function apply(o: Op, stores: Record<Side, MailStore>, roots: Record<Side, string>, model: Model, counter: { n: number }): Promise<void> {
  if (o.kind === 'sync') {
    const [first, second] = o.reverse ? [stores.B, stores.A] : [stores.A, stores.B];
    const r = await runSync(first, second, { full: o.full });
    assert.equal(r.changedDuringSync, false, 'no one else touches the stores, so nothing changes during a sync');
    return;
  }
  const s = stores[o.side];
  const root = roots[o.side];
  const boxes = (await s.listMailboxes()).mailboxes.sort((x, y) => x.name.join('/').localeCompare(y.name.join('/')));
  if (o.kind === 'create') {
    const name = pick(FOLDERS, o.name)!;
    if (!boxes.some((b) => b.name.join('/') === name)) await s.createMailbox([name]);
    return;
  }
  if (o.kind === 'rename' || o.kind === 'delete') {
    const box = pick(boxes.filter((b) => b.name.join('/') !== 'INBOX'), o.box);
    if (!box) return;
    if (o.kind === 'rename') {
      const to = pick(FOLDERS, o.name)!;
      if (!boxes.some((b) => b.name.join('/') === to)) await s.renameMailbox(box.name, [to]);
      return;
    }
    model.deletedBoxes.add(box.guid);
    for (const m of (await s.getMessages(box.name)).messages) model.inDeleted.add(m.guid);
    await s.deleteMailbox(box.name);
    return;
  }
  const box = pick(boxes, o.box)!;
  if (o.kind === 'save') {
    const [saved] = await s.saveMessages(box.name, [req(message(`m${++counter.n}`, `body ${counter.n}\n`), { flags: o.flags, keywords: o.keywords })]);
    model.saved.set(saved!.guid, box.guid);
    return;
  }
  const { messages } = await s.getMessages(box.name);
  const m = pick(messages, o.msg);
  if (!m) return;
  const dir = mailboxDir(root, box.name);
  if (o.kind === 'expunge' && o.viaDisk) {
    // A MUA unlinks a file; which message it held is what the store's next scan finds missing.
    const files = ['cur', 'new'].flatMap((sub) => (existsSync(join(dir, sub)) ? readdirSync(join(dir, sub)).map((f) => join(dir, sub, f)) : []));
    const file = pick(files.sort(), o.msg);
    if (!file) return;
    unlinkSync(file);
    const after = new Set((await s.getMessages(box.name)).messages.map((x) => x.guid));
    for (const x of messages) if (!after.has(x.guid)) model.expunged.add(x.guid);
    return;
  }
  if (o.kind === 'expunge') {
    model.expunged.add(m.guid);
    await s.expunge(box.name, [m.uid]);
    return;
  }
  if (o.kind === 'flags' && o.viaDisk) {
    // A MUA renames a file in cur/ to change its system flags, keeping its keyword letters.
    const files = readdirSync(join(dir, 'cur')).sort();
    const file = pick(files, o.msg);
    if (!file) return;
    const [base, info = '2,'] = file.split(':');
    const kwLetters = [...info.slice(2)].filter((c) => c >= 'a' && c <= 'z');
    const letters = [...o.flags.map((f) => LETTER[f]), ...kwLetters].sort().join('');
    renameSync(join(dir, 'cur', file), join(dir, 'cur', `${base}:2,${letters}`));
    return;
  }
  if (o.kind === 'flags') {
    await s.updateFlags(box.name, [{ uid: m.uid, flags: o.flags, keywords: m.keywords }]);
    return;
  }
  await s.updateFlags(box.name, [{ uid: m.uid, flags: m.flags, keywords: o.keywords }]);
}

/** `foreignB`: B hands out its own UIDs and has no native GUIDs, as an IMAP server without X-GUID. */
async function runHistory(ops: Op[], foreignB = false): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-random-'));
  const roots: Record<Side, string> = { A: join(dir, 'a'), B: join(dir, 'b') };
  const open = (root: string) => MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
  const stores: Record<Side, MailStore> = { A: open(roots.A), B: foreignB ? ForeignStore.open(roots.B) : open(roots.B) };
  const model: Model = { saved: new Map(), expunged: new Set(), inDeleted: new Set(), deletedBoxes: new Set() };
  try {
    const counter = { n: 0 };
    // A common starting point: two folders with mail, synced, for renames and deletes to act on.
    const start: Op[] = [
      { kind: 'create', side: 'A', name: 0 },
      { kind: 'create', side: 'A', name: 1 },
      ...[0, 1, 2].map((box): Op => ({ kind: 'save', side: 'A', box, flags: [], keywords: [] })),
      { kind: 'sync', reverse: false, full: false },
    ];
    for (const o of [...start, ...ops]) await apply(o, stores, roots, model, counter);

    const r = await runSync(stores.A, stores.B);
    assert.equal(r.changedDuringSync, false, 'the final sync completes');
    const [sa, sb] = [await snapshot(stores.A, foreignB), await snapshot(stores.B, foreignB)];
    assert.deepEqual(sb, sa, 'both sides hold the same mailboxes and messages');

    const at = await whereIs(stores.A);
    for (const [guid, boxes] of at) assert.equal(boxes.length, 1, `message ${guid} is in one mailbox only, not ${boxes.join(', ')}`);
    for (const [guid, boxGuid] of model.saved) {
      const deliberate = model.expunged.has(guid) || model.inDeleted.has(guid) || model.deletedBoxes.has(boxGuid);
      if (!deliberate) assert.ok(at.has(guid), `message ${guid} was neither expunged nor in a deleted folder, yet it is lost`);
    }
    for (const guid of model.expunged) {
      if (!model.inDeleted.has(guid)) assert.ok(!at.has(guid), `message ${guid} was expunged, yet it came back`);
    }

    assertNoop(await runSync(stores.A, stores.B), 'a second sync');
    assertNoop(await runSync(stores.B, stores.A, { full: true }), 'a second full sync in the other direction');
    assert.deepEqual([await snapshot(stores.A, foreignB), await snapshot(stores.B, foreignB)], [sa, sb]);
  } finally {
    await stores.A.close();
    await stores.B.close();
    await rm(dir, { recursive: true, force: true });
  }
}

it('random histories on two Maildirs converge without losing or resurrecting mail', { timeout: 300_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 24 }), (ops) => runHistory(ops)),
    { numRuns: Number(process.env.SYNC_RANDOM_RUNS ?? 150), ...(process.env.SYNC_RANDOM_SEED ? { seed: Number(process.env.SYNC_RANDOM_SEED) } : {}), includeErrorInReport: true },
  );
});

it('random histories against a store that hands out its own UIDs and has no native GUIDs converge too', { timeout: 300_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 24 }), (ops) => runHistory(ops, true)),
    { numRuns: Number(process.env.SYNC_RANDOM_RUNS ?? 60), ...(process.env.SYNC_RANDOM_SEED ? { seed: Number(process.env.SYNC_RANDOM_SEED) } : {}), includeErrorInReport: true },
  );
});
