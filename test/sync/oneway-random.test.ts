/**
 * `sync -1` against a model of its man page's rules. After an earlier backup or two-way sync,
 * random deliveries, expunges and flag changes on both sides (through the store, or on disk as
 * a MUA does), then `sync -1 A B`, in up to three rounds. The model, kept apart from the planner:
 * - A is not written: every file under its root, uidlists included, is byte for byte as before;
 * - B loses none of its messages, and none of the messages B deleted comes back;
 * - B gains every message of A it did not delete;
 * - a message of A that B cannot hold at its UID (B holds another message there, or B's UIDs
 *   went past it) gets a UID above both UIDNEXTs in B, and so does B's own message it clashed
 *   with; every other message keeps its UID;
 * - a flag or keyword changed on one side only ends as that side left it in B; one neither
 *   side changed stays as B has it (B's own earlier changes included). Flag by flag, not whole
 *   flag sets: dsync merges what each side added and removed since the last sync
 *   (`merge_flags`), and the man page says -1 is that algorithm with the source left alone;
 * - a second `sync -1` changes nothing.
 *
 * ONEWAY_RANDOM_RUNS (default 30; 300 with MAILFERRY_SOAK=1) widens a search; ONEWAY_RANDOM_SEED
 * (with ONEWAY_RANDOM_PATH, as fast-check reports them) replays one.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import fc from 'fast-check';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { SYSTEM_FLAGS, type MailboxName, type SystemFlag } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { message, readAll, req } from '../contract/store-contract.js';

type Side = 'A' | 'B';
type Op =
  | { kind: 'deliver'; side: Side; box: number; viaDisk: boolean }
  | { kind: 'expunge'; side: Side; box: number; msg: number; viaDisk: boolean }
  | { kind: 'flags'; side: Side; box: number; msg: number; flags: SystemFlag[]; keywords: string[]; viaDisk: boolean };

const BOXES: MailboxName[] = [['INBOX'], ['Work']];
const LETTER: Record<SystemFlag, string> = { '\\Draft': 'D', '\\Flagged': 'F', '\\Answered': 'R', '\\Seen': 'S', '\\Deleted': 'T' };

const side = fc.constantFrom<Side>('A', 'B');
const index = fc.nat({ max: 30 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), side, box: index, viaDisk: fc.boolean() }, { noNullPrototype: true }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('expunge' as const), side, box: index, msg: index, viaDisk: fc.boolean() }, { noNullPrototype: true }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('flags' as const), side, box: index, msg: index, flags: fc.subarray([...SYSTEM_FLAGS]), keywords: fc.subarray(['$Junk', 'work']), viaDisk: fc.boolean() }, { noNullPrototype: true }),
  },
);

const pick = <T>(xs: readonly T[], i: number): T | undefined => (xs.length === 0 ? undefined : xs[i % xs.length]);
const tokenOf = (body: Buffer) => /tok-\d+/.exec(body.toString())![0];

interface Pair {
  roots: Record<Side, string>;
  stores: Record<Side, MaildirStore>;
}

interface Model {
  counter: number;
  /** Tokens B deleted while holding them. */
  deletedAtB: Set<string>;
}

/** Every directory and file under a root, with a digest of each file's bytes. */
function treeSnapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, rel: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((x, y) => (x.name < y.name ? -1 : 1))) {
      const path = join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out[`${r}/`] = 'dir';
        walk(path, r);
      } else out[r] = createHash('sha1').update(readFileSync(path)).digest('hex');
    }
  };
  walk(root, '');
  return out;
}

function dirOf(p: Pair, s: Side, box: MailboxName): string {
  return box[0] === 'INBOX' ? p.roots[s] : join(p.roots[s], `.${box.join('.')}`);
}

function files(dir: string): string[] {
  return ['new', 'cur'].flatMap((sub) => (existsSync(join(dir, sub)) ? readdirSync(join(dir, sub)).sort().map((f) => join(dir, sub, f)) : []));
}

async function apply(p: Pair, o: Op, model: Model): Promise<void> {
  const store = p.stores[o.side];
  const box = pick(BOXES, o.box)!;
  const dir = dirOf(p, o.side, box);
  if (o.kind === 'deliver') {
    const n = ++model.counter;
    const body = message(`m${n}`, `tok-${n}\n`);
    // The source's deliveries go through its store, as an LDA writes the uidlist on delivery:
    // what sync -1 must leave alone is whatever A holds when it starts.
    if (o.viaDisk && o.side === 'B') writeFileSync(join(dir, 'new', `${1_700_000_000 + n}.M${n}P${process.pid}.oneway-random`), body);
    else await store.saveMessages(box, [req(body)]);
    return;
  }
  if (o.viaDisk) {
    const file = pick(files(dir), o.msg);
    if (!file) return;
    const token = tokenOf(readFileSync(file));
    if (o.kind === 'expunge') {
      if (o.side === 'B') model.deletedAtB.add(token);
      unlinkSync(file);
      return;
    }
    // A MUA rewrites the flag letters and keeps the keyword letters (a-z) it does not know.
    const [base, info = ''] = file.slice(file.lastIndexOf('/') + 1).split(':');
    const keywordLetters = [...info.replace(/^2,/, '')].filter((c) => c >= 'a' && c <= 'z');
    renameSync(file, join(dir, 'cur', `${base}:2,${[...o.flags.map((f) => LETTER[f]), ...keywordLetters].sort().join('')}`));
    return;
  }
  const m = pick((await store.getMessages(box)).messages, o.msg);
  if (!m) return;
  const token = tokenOf(await readAll(await store.openMessage(box, m.uid)));
  if (o.kind === 'expunge') {
    if (o.side === 'B') model.deletedAtB.add(token);
    await store.expunge(box, [m.uid]);
    return;
  }
  await store.updateFlags(box, [{ uid: m.uid, flags: o.flags, keywords: o.keywords }]);
}

interface Held {
  uid: number;
  /** Flags and keywords. */
  flags: Set<string>;
}
type Holdings = Awaited<ReturnType<typeof holdings>>;

/** Token -> UID and flags, per mailbox, read through the store. */
async function holdings(s: MaildirStore): Promise<{ boxes: Map<string, Map<string, Held>>; uidNext: Map<string, number> }> {
  const boxes = new Map<string, Map<string, Held>>();
  const uidNext = new Map<string, number>();
  for (const box of BOXES) {
    const got = await s.getMessages(box);
    const held = new Map<string, Held>();
    for (const m of got.messages) held.set(tokenOf(await readAll(await s.openMessage(box, m.uid))), { uid: m.uid, flags: new Set([...m.flags, ...m.keywords]) });
    boxes.set(box.join('/'), held);
    uidNext.set(box.join('/'), got.uidNext);
  }
  return { boxes, uidNext };
}

/**
 * The model's verdict on one `sync -1`, from what both sides held when the round began, what
 * they held when it ran, and what B holds after it.
 */
function checkOneway(start: { a: Holdings; b: Holdings }, before: { a: Holdings; b: Holdings }, after: Holdings, model: Model): void {
  for (const box of BOXES.map((b) => b.join('/'))) {
    const [a, b, now] = [before.a.boxes.get(box)!, before.b.boxes.get(box)!, after.boxes.get(box)!];
    const [startA, startB] = [start.a.boxes.get(box)!, start.b.boxes.get(box)!];
    const floor = Math.max(before.a.uidNext.get(box)!, before.b.uidNext.get(box)!);
    const uidsB = new Map([...b].map(([t, h]) => [h.uid, t]));
    // Which of B's own messages an incoming one clashes with, and which incoming ones B cannot hold at their UID.
    const moved = new Set<string>();
    for (const [t, h] of a) {
      if (b.has(t) || model.deletedAtB.has(t)) continue;
      const holder = uidsB.get(h.uid);
      if (holder !== undefined) {
        moved.add(t);
        // doveadm-sync(1)'s clash is two different messages at one UID, each new on its side
        // ("both the messages are kept in the destination but they're given new UIDs"). B's copy
        // of a message A also holds (at another UID since an earlier clash) is no such message:
        // it is already in B, moving it again gains nothing (A's UID for it still differs: "one-way
        // sync begins to quickly diverge") and only makes clients fetch it again.
        if (!a.has(holder)) moved.add(holder);
      } else if (h.uid < before.b.uidNext.get(box)!) moved.add(t);
    }
    for (const t of b.keys()) assert.ok(now.has(t), `${box}: B lost its own ${t}`);
    for (const t of model.deletedAtB) assert.ok(!now.has(t), `${box}: ${t}, deleted in B, came back`);
    for (const t of a.keys()) if (!model.deletedAtB.has(t)) assert.ok(now.has(t), `${box}: ${t} of A did not reach B`);
    for (const t of now.keys()) assert.ok(a.has(t) || b.has(t), `${box}: ${t} appeared from nowhere`);
    for (const [t, h] of now) {
      const was = b.get(t) ?? a.get(t)!;
      if (moved.has(t)) assert.ok(h.uid >= floor, `${box}: ${t} should have a UID from ${floor} on, has ${h.uid}`);
      else assert.equal(h.uid, was.uid, `${box}: ${t} should keep UID ${was.uid}`);
    }
    assert.equal(new Set([...now.values()].map((h) => h.uid)).size, now.size, `${box}: two messages at one UID`);
    for (const [t, h] of now) {
      const [inA, inB] = [a.get(t), b.get(t)];
      const got = [...h.flags].sort().join(' ');
      if (!inB) {
        assert.equal(got, [...inA!.flags].sort().join(' '), `${box}: ${t} came from A with A's flags`);
        continue;
      }
      for (const f of new Set([...(inA?.flags ?? []), ...inB.flags, ...(startA.get(t)?.flags ?? []), ...(startB.get(t)?.flags ?? [])])) {
        const changed = (from: Held | undefined, to: Held | undefined): boolean => from !== undefined && to !== undefined && from.flags.has(f) !== to.flags.has(f);
        const byA: boolean = changed(startA.get(t), inA);
        const byB: boolean = changed(startB.get(t), inB);
        // Changed the same flag both ways: the man page names no winner.
        if (byA && byB && inA!.flags.has(f) !== inB.flags.has(f)) continue;
        const want: boolean = byA ? inA!.flags.has(f) : inB.flags.has(f);
        assert.equal(h.flags.has(f), want, `${box}: ${t}'s ${f} should be ${want ? 'set' : 'clear'}: changed ${byA ? 'in A' : byB ? 'in B' : 'by neither'} (B has ${got})`);
      }
    }
  }
}

async function runHistory(earlier: 'backup' | 'sync', rounds: Op[][]): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-oneway-random-'));
  const roots: Record<Side, string> = { A: join(dir, 'a'), B: join(dir, 'b') };
  // A's change index lives outside its root, so that every file under the root can be compared.
  const open = (root: string, index: string) => MaildirStore.open(parseMaildirLocation(`maildir:${root}:INDEX=${index}`), { create: true, fsync: false, warn: () => {} });
  const p: Pair = { roots, stores: { A: open(roots.A, join(dir, 'a-index')), B: open(roots.B, join(dir, 'b-index')) } };
  const model: Model = { counter: 0, deletedAtB: new Set() };
  try {
    await p.stores.A.createMailbox(['Work']);
    for (let i = 0; i < 6; i++) await apply(p, { kind: 'deliver', side: 'A', box: i, viaDisk: false }, model);
    if (earlier === 'backup') await runBackup(p.stores.A, p.stores.B);
    else await runSync(p.stores.A, p.stores.B);

    for (const ops of rounds) {
      const start = { a: await holdings(p.stores.A), b: await holdings(p.stores.B) };
      for (const o of ops) await apply(p, o, model);
      const tree = treeSnapshot(roots.A);
      const before = { a: await holdings(p.stores.A), b: await holdings(p.stores.B) };
      const r = await runSync(p.stores.A, p.stores.B, { mode: 'oneway' });
      assert.equal(r.changedDuringSync, false, 'sync -1 saw a change during the run where nothing else ran');
      checkOneway(start, before, await holdings(p.stores.B), model);
      assert.deepEqual(treeSnapshot(roots.A), tree, 'sync -1 wrote to its source');
    }
    const tree = treeSnapshot(roots.A);
    const again = await runSync(p.stores.A, p.stores.B, { mode: 'oneway' });
    assert.deepEqual({ saved: again.saved, expunged: again.expunged, flagUpdates: again.flagUpdates, treeActions: again.treeActions }, { saved: 0, expunged: 0, flagUpdates: 0, treeActions: 0 }, 'a second sync -1 changes nothing');
    assert.deepEqual(treeSnapshot(roots.A), tree);
  } finally {
    await p.stores.A.close();
    await p.stores.B.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const soak = process.env.MAILFERRY_SOAK === '1';
const runs = Number(process.env.ONEWAY_RANDOM_RUNS ?? (soak ? 300 : 30));
const seed = process.env.ONEWAY_RANDOM_SEED
  ? { seed: Number(process.env.ONEWAY_RANDOM_SEED), ...(process.env.ONEWAY_RANDOM_PATH ? { path: process.env.ONEWAY_RANDOM_PATH, endOnFailure: true } : {}) }
  : {};

it('sync -1 after a backup or a sync follows the man page: source untouched, destination loses nothing and gets no deletion back', { timeout: Math.max(300_000, runs * 5_000) }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom<'backup' | 'sync'>('backup', 'sync'), fc.array(fc.array(op, { minLength: 1, maxLength: 14 }), { minLength: 1, maxLength: 3 }), (earlier, rounds) => runHistory(earlier, rounds)),
    { numRuns: runs, ...seed, includeErrorInReport: true },
  );
});

