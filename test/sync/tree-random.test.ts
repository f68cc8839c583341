/**
 * Random folder-tree histories on two real Maildirs (Maildir++ or LAYOUT=fs), first synced:
 * on each side, in random order, folders are created (names with spaces, dots, non-ASCII,
 * nested), renamed (parents with their children, the same folder on both sides to different
 * or equal names), deleted (through the store or by `rm -rf`), mail is delivered (through the
 * store or into new/, also into a folder the other side deleted), flags change and mail is
 * expunged (through the store or as a MUA does it on disk); then the pair is synced.
 *
 * After the sync: both sides hold the same tree and the same messages per folder; no message
 * is held twice; a message is gone only when a side that held it expunged it or deleted its
 * folder (a delivery the deleting side never saw survives); and syncing again changes nothing.
 *
 * TREE_RANDOM_RUNS (default 30; 300 with MAILFERRY_SOAK=1) and TREE_RANDOM_SEED widen or
 * reproduce a search.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { it } from 'node:test';
import fc from 'fast-check';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MailferryError } from '../../src/model/errors.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { SYSTEM_FLAGS, type MailboxName, type SystemFlag } from '../../src/storage/store.js';
import { runSync, type SyncResult } from '../../src/sync/sync.js';
import { message, readAll, req } from '../contract/store-contract.js';

type Side = 'A' | 'B';
type Layout = 'maildir++' | 'fs';

type TreeOp =
  | { kind: 'create'; side: Side; name: number; viaDisk: boolean }
  | { kind: 'rename'; side: Side; box: number; name: number; viaDisk: boolean }
  | { kind: 'delete'; side: Side; box: number; viaDisk: boolean }
  | { kind: 'deliver'; side: Side; box: number; viaDisk: boolean }
  | { kind: 'flags'; side: Side; box: number; msg: number; flags: SystemFlag[]; viaDisk: boolean }
  | { kind: 'expunge'; side: Side; box: number; msg: number; viaDisk: boolean };

/** The tree both sides start from, each folder with mail. */
const START: MailboxName[] = [['Work'], ['Work', 'Sub'], ['Work', 'Sub', 'Deep'], ['Old Stuff'], ['Récap']];
/** Few names, so that the two sides often want the same one; dots only where the layout allows. */
const NAMES: MailboxName[] = [['Work'], ['Work', 'Sub'], ['Old Stuff'], ['Récap'], ['New'], ['Work', 'New'], ['Archive', '2024'], ['Papers'], ['v1.2 notes'], ['Ünïcødé', 'Zweig']];
const LETTER: Record<SystemFlag, string> = { '\\Draft': 'D', '\\Flagged': 'F', '\\Answered': 'R', '\\Seen': 'S', '\\Deleted': 'T' };

const side = fc.constantFrom<Side>('A', 'B');
const index = fc.nat({ max: 30 });
const viaDisk = fc.boolean();
const treeOp: fc.Arbitrary<TreeOp> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('create' as const), side, name: index, viaDisk }, { noNullPrototype: true }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('rename' as const), side, box: index, name: index, viaDisk }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), side, box: index, viaDisk }, { noNullPrototype: true }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), side, box: index, viaDisk }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flags' as const), side, box: index, msg: index, flags: fc.subarray([...SYSTEM_FLAGS]), viaDisk }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('expunge' as const), side, box: index, msg: index, viaDisk }, { noNullPrototype: true }) },
);

const pick = <T>(xs: readonly T[], i: number): T | undefined => (xs.length === 0 ? undefined : xs[i % xs.length]);
const key = (name: MailboxName) => name.join('/');
const isUnder = (name: MailboxName, parent: MailboxName) => name.length > parent.length && parent.every((p, i) => name[i] === p);

interface Pair {
  layout: Layout;
  roots: Record<Side, string>;
  stores: Record<Side, MaildirStore>;
}

interface Model {
  /** Every message token ever delivered. */
  delivered: Set<string>;
  /** Tokens a side deliberately removed: expunged, or held by it in a folder it deleted. */
  removed: Set<string>;
  counter: number;
}

function tokenOf(body: Buffer | string): string {
  const m = /tok-\d+/.exec(body.toString());
  assert.ok(m, `a message without a token: ${body.toString().slice(0, 200)}`);
  return m[0];
}

function messageFiles(dir: string): string[] {
  return ['new', 'cur'].flatMap((sub) => (existsSync(join(dir, sub)) ? readdirSync(join(dir, sub)).sort().map((f) => join(dir, sub, f)) : []));
}

/** Folders as the directory tree shows them, without asking the store (which would scan). */
function folders(p: Pair, s: Side): { name: MailboxName; dir: string }[] {
  return p.stores[s].layout.listMailboxDirs(() => {}).filter((m) => key(m.name) !== 'INBOX').sort((x, y) => key(x.name).localeCompare(key(y.name)));
}

function allowed(p: Pair, name: MailboxName): boolean {
  return p.layout === 'fs' || name.every((part) => !part.includes('.'));
}

/** What a user does with a shell: make the directories of a new folder. */
function mkdirFolder(dir: string): void {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, 'maildirfolder'), '');
}

async function deliver(p: Pair, s: Side, box: { name: MailboxName; dir: string }, viaDisk: boolean, model: Model): Promise<void> {
  const n = ++model.counter;
  const body = message(`m${n}`, `tok-${n}\n`);
  model.delivered.add(`tok-${n}`);
  if (viaDisk) writeFileSync(join(box.dir, 'new', `${1_700_000_000 + n}.M${n}P${process.pid}.tree-random`), body);
  else await p.stores[s].saveMessages(box.name, [req(body)]);
}

async function apply(p: Pair, o: TreeOp, model: Model): Promise<void> {
  const store = p.stores[o.side];
  const boxes = folders(p, o.side);
  const taken = new Set(boxes.map((b) => key(b.name)));
  if (o.kind === 'create') {
    const name = pick(NAMES, o.name)!;
    if (taken.has(key(name)) || !allowed(p, name)) return;
    if (o.viaDisk) mkdirFolder(store.layout.dirOf(name));
    else await store.createMailbox(name);
    return;
  }
  if (o.kind === 'deliver' && pick([...boxes, undefined], o.box) === undefined) {
    // INBOX gets mail too.
    return deliver(p, o.side, { name: ['INBOX'], dir: p.roots[o.side] }, o.viaDisk, model);
  }
  const box = pick(boxes, o.box);
  if (!box) return;
  if (o.kind === 'rename') {
    const to = pick(NAMES, o.name)!;
    if (taken.has(key(to)) || !allowed(p, to) || isUnder(to, box.name) || key(to) === key(box.name)) return;
    if (!o.viaDisk) {
      // A child landing on an existing folder: the store refuses before moving anything, as a user sees.
      await store.renameMailbox(box.name, to).catch((err: unknown) => {
        if (!(err instanceof MailferryError && err.kind === 'exists')) throw err;
      });
      return;
    }
    // `mv`: with LAYOUT=fs the children move along; with Maildir++ they are directories of their own and stay.
    const target = store.layout.dirOf(to);
    if (existsSync(target)) return; // a plain parent directory of the fs layout; mv would move into it
    mkdirSync(dirname(target), { recursive: true });
    renameSync(box.dir, target);
    return;
  }
  if (o.kind === 'delete') {
    // The deleting side held every message of the folder, and with rm -rf of an fs folder, of its children too.
    const gone = o.viaDisk && p.layout === 'fs' ? boxes.filter((b) => key(b.name) === key(box.name) || isUnder(b.name, box.name)) : [box];
    for (const b of gone) for (const f of messageFiles(b.dir)) model.removed.add(tokenOf(readFileSync(f)));
    if (o.viaDisk) rmSync(box.dir, { recursive: true, force: true });
    else await store.deleteMailbox(box.name);
    return;
  }
  if (o.kind === 'deliver') return deliver(p, o.side, box, o.viaDisk, model);
  if (o.viaDisk) {
    const file = pick(messageFiles(box.dir), o.msg);
    if (!file) return;
    if (o.kind === 'expunge') {
      model.removed.add(tokenOf(readFileSync(file)));
      unlinkSync(file);
      return;
    }
    // A MUA moves the file to cur/ with other flag letters.
    const base = file.slice(file.lastIndexOf('/') + 1).split(':')[0]!;
    renameSync(file, join(box.dir, 'cur', `${base}:2,${o.flags.map((f) => LETTER[f]).sort().join('')}`));
    return;
  }
  const m = pick((await store.getMessages(box.name)).messages, o.msg);
  if (!m) return;
  if (o.kind === 'expunge') {
    model.removed.add(tokenOf(await readAll(await store.openMessage(box.name, m.uid))));
    await store.expunge(box.name, [m.uid]);
    return;
  }
  await store.updateFlags(box.name, [{ uid: m.uid, flags: o.flags, keywords: m.keywords }]);
}

/** Folder name -> `uid token flags` of each message, in UID order. */
async function snapshot(s: MaildirStore): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const box of (await s.listMailboxes()).mailboxes) {
    const lines = [];
    for (const m of (await s.getMessages(box.name)).messages) {
      lines.push(`${m.uid} ${tokenOf(await readAll(await s.openMessage(box.name, m.uid)))} ${[...m.flags].sort().join(',')}`);
    }
    out[key(box.name)] = lines;
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

async function runTreeHistory(layout: Layout, rounds: TreeOp[][]): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-tree-random-'));
  const roots: Record<Side, string> = { A: join(dir, 'a'), B: join(dir, 'b') };
  const open = (root: string) =>
    MaildirStore.open(parseMaildirLocation(`maildir:${root}${layout === 'fs' ? ':LAYOUT=fs' : ''}`), { create: true, fsync: false, warn: () => {} });
  const p: Pair = { layout, roots, stores: { A: open(roots.A), B: open(roots.B) } };
  const model: Model = { delivered: new Set(), removed: new Set(), counter: 0 };
  try {
    for (const name of START) {
      await p.stores.A.createMailbox(name);
      await deliver(p, 'A', { name, dir: p.stores.A.layout.dirOf(name) }, false, model);
    }
    await deliver(p, 'A', { name: ['INBOX'], dir: roots.A }, false, model);
    assert.equal((await runSync(p.stores.A, p.stores.B)).changedDuringSync, false);

    for (const ops of rounds) {
      for (const o of ops) await apply(p, o, model);
      const r = await runSync(p.stores.A, p.stores.B);
      assert.equal(r.changedDuringSync, false, 'no one else touches the stores, so nothing changes during a sync');
    }

    const [sa, sb] = [await snapshot(p.stores.A), await snapshot(p.stores.B)];
    assert.deepEqual(sb, sa, 'both sides hold the same folders and messages');
    const where = new Map<string, string[]>();
    for (const [name, lines] of Object.entries(sa)) for (const l of lines) where.set(l.split(' ')[1]!, [...(where.get(l.split(' ')[1]!) ?? []), name]);
    for (const [token, names] of where) assert.equal(names.length, 1, `${token} is held more than once: ${names.join(', ')}`);
    for (const token of model.delivered) {
      if (!model.removed.has(token)) assert.ok(where.has(token), `${token} was neither expunged nor in a folder its deleter held it in, yet it is lost`);
    }
    for (const token of where.keys()) assert.ok(model.delivered.has(token));

    assertNoop(await runSync(p.stores.A, p.stores.B), 'a second sync');
    assertNoop(await runSync(p.stores.B, p.stores.A, { full: true }), 'a full sync in the other direction');
    assert.deepEqual([await snapshot(p.stores.A), await snapshot(p.stores.B)], [sa, sb]);
  } finally {
    await p.stores.A.close();
    await p.stores.B.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const soak = process.env.MAILFERRY_SOAK === '1';
const runs = Number(process.env.TREE_RANDOM_RUNS ?? (soak ? 300 : 30));
const seed = process.env.TREE_RANDOM_SEED ? { seed: Number(process.env.TREE_RANDOM_SEED) } : {};

it('random folder-tree histories on two Maildirs converge without losing or duplicating mail', { timeout: soak ? 3_600_000 : 300_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom<Layout>('maildir++', 'fs'),
      fc.array(fc.array(treeOp, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 2 }),
      (layout, rounds) => runTreeHistory(layout, rounds),
    ),
    { numRuns: runs, ...seed, includeErrorInReport: true },
  );
});
