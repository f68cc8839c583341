/**
 * The incremental path against the whole comparison: fast-check builds random histories
 * (deliveries with flags and keywords, flag and keyword changes, expunges, a second copy of a
 * message under its GUID, moves between folders keeping the GUID, on both sides, between syncs
 * and during them; and what another program does to the files: a rename that changes flags, a
 * file deleted, a file dropped into new/) and plays each in two copies of one synced pair of
 * Maildirs: one synced as
 * the engine does by default, reading only what changed since the last proven sync, the other
 * with every changed mailbox listed and compared whole. After every sync both copies must be
 * in exactly the same state (UIDs, GUIDs, flags, keywords, UIDNEXT, on both sides) and have
 * said the same about changes during the run; at the end each pair is equal, nothing delivered
 * and not deliberately expunged is lost, and the incremental copy must really have read
 * changes only (counted through a wrapper of its stores).
 *
 * A change may also land between the two readings the incremental path makes of a side (its
 * changes since the last proven sync, then the records they name): the engine must then see
 * that side moved and compare the mailbox whole, which is what the other copy does with the
 * same change made just before its run.
 *
 * INCREMENTAL_RANDOM_RUNS (default 40, a few seconds; 400 with MAILFERRY_SOAK=1) and
 * INCREMENTAL_RANDOM_SEED widen or reproduce a search.
 */
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import fc from 'fast-check';
import { SYSTEM_FLAGS, type MailboxName, type MailStore, type SystemFlag } from '../../src/storage/store.js';
import { encodeMutf7 } from '../../src/model/mutf7.js';
import { runSync } from '../../src/sync/sync.js';
import { message, readAll, req } from '../contract/store-contract.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { mailboxDir, openMaildir } from './maildir-pair.js';

type Side = 'A' | 'B';
type Change =
  | { kind: 'save'; side: Side; box: number; flags: SystemFlag[]; keywords: string[] }
  | { kind: 'flags'; side: Side; box: number; msg: number; flags: SystemFlag[] }
  | { kind: 'keywords'; side: Side; box: number; msg: number; keywords: string[] }
  | { kind: 'expunge'; side: Side; box: number; msg: number }
  | { kind: 'copy'; side: Side; box: number; msg: number }
  | { kind: 'move'; side: Side; box: number; msg: number; to: number }
  /** Another program's changes to the files: a rename to other flags, an unlink, a delivery into new/. */
  | { kind: 'mua-flags'; side: Side; box: number; msg: number; flags: SystemFlag[] }
  | { kind: 'mua-delete'; side: Side; box: number; msg: number }
  | { kind: 'mua-deliver'; side: Side; box: number };
/**
 * `during`: a change made by someone else once the run has started to apply its plan.
 * `between`: one made on its side right after the run read that side's changes since the last
 * proven sync (in whichever mailbox that is first), before it read the records they name.
 */
type Op = Change | { kind: 'sync'; reverse: boolean; during?: Change; between?: Change };

const BOXES: MailboxName[] = [['INBOX'], ['Sub box'], ['Ünï', 'côde']];
const side = fc.constantFrom<Side>('A', 'B');
const box = fc.nat({ max: BOXES.length - 1 });
const msg = fc.nat({ max: 30 });
const flags = fc.subarray([...SYSTEM_FLAGS]);
const keywords = fc.subarray(['$Forwarded', 'work', 'later', '$Junk'], { maxLength: 3 });
const rec = <T>(shape: { [K in keyof T]: fc.Arbitrary<T[K]> }) => fc.record(shape, { noNullPrototype: true });

const change: fc.Arbitrary<Change> = fc.oneof(
  { weight: 5, arbitrary: rec({ kind: fc.constant('save' as const), side, box, flags, keywords }) },
  { weight: 4, arbitrary: rec({ kind: fc.constant('flags' as const), side, box, msg, flags }) },
  { weight: 2, arbitrary: rec({ kind: fc.constant('keywords' as const), side, box, msg, keywords }) },
  { weight: 3, arbitrary: rec({ kind: fc.constant('expunge' as const), side, box, msg }) },
  { weight: 1, arbitrary: rec({ kind: fc.constant('copy' as const), side, box, msg }) },
  { weight: 2, arbitrary: rec({ kind: fc.constant('move' as const), side, box, msg, to: box }) },
  { weight: 2, arbitrary: rec({ kind: fc.constant('mua-flags' as const), side, box, msg, flags }) },
  { weight: 1, arbitrary: rec({ kind: fc.constant('mua-delete' as const), side, box, msg }) },
  { weight: 1, arbitrary: rec({ kind: fc.constant('mua-deliver' as const), side, box }) },
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: change },
  { weight: 2, arbitrary: rec({ kind: fc.constant('sync' as const), reverse: fc.boolean() }) },
  { weight: 1, arbitrary: rec({ kind: fc.constant('sync' as const), reverse: fc.boolean(), during: change }) },
  // Within the mailbox being read: a move would change another one after the run listed it.
  { weight: 2, arbitrary: rec({ kind: fc.constant('sync' as const), reverse: fc.boolean(), between: change.filter((c) => c.kind !== 'move') }) },
);

interface World {
  stores: Record<Side, MailStore>;
  roots: Record<Side, string>;
  /** Whole listings (getMessages without a modseq) the engine asked for. */
  wholeListings: number;
  /** Reads of only some messages (getMessagesOf). */
  partialReads: number;
  /** Counting on: only while the engine runs. */
  counting: boolean;
}

interface Hook {
  during?: () => Promise<void>;
  between?: (name: MailboxName) => Promise<void>;
}

/**
 * The store as the engine sees it, counting its listings; `during` runs once, after the first
 * write; `between` once, after the first reading of changes since a modseq.
 */
function watched(store: MailStore, world: World, hook: Hook): MailStore {
  const write = (name: 'saveMessages' | 'updateFlags' | 'expunge') => async (...args: unknown[]) => {
    const out = await (store[name] as (...a: unknown[]) => Promise<unknown>)(...args);
    const during = hook.during;
    hook.during = undefined;
    if (during) await during();
    return out;
  };
  const own: Partial<Record<keyof MailStore, unknown>> = {
    getMessages: async (name: MailboxName, since?: number) => {
      if (world.counting && since === undefined) world.wholeListings++;
      const out = await store.getMessages(name, since);
      const between = hook.between;
      if (since !== undefined && between) {
        hook.between = undefined;
        await between(name);
      }
      return out;
    },
    getMessagesOf: (name: MailboxName, which: Parameters<NonNullable<MailStore['getMessagesOf']>>[1]) => {
      if (world.counting) world.partialReads++;
      return store.getMessagesOf!(name, which);
    },
    saveMessages: write('saveMessages'),
    updateFlags: write('updateFlags'),
    expunge: write('expunge'),
  };
  return new Proxy(store, {
    get(target, prop) {
      if (Object.hasOwn(own, prop)) return own[prop as keyof MailStore];
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

async function byUid(s: MailStore, name: MailboxName) {
  return (await s.getMessages(name)).messages;
}

/**
 * Applies a change to one world; returns the GUID a save got, so that the other world's save
 * takes the same one (`guid`). Messages are picked by position in UID order, the same in both
 * worlds while they are equal.
 */
async function applyChange(c: Change, w: World, counter: { n: number }, delivered: Set<string>, expunged: Set<string>, guid?: string): Promise<string | undefined> {
  const s = w.stores[c.side];
  const name = BOXES[c.box]!;
  const dir = mailboxDir(w.roots[c.side], name.map(encodeMutf7));
  if (c.kind === 'mua-deliver') {
    // A name of the same shape in both worlds; its GUID is what the store makes of it.
    const n = ++counter.n;
    await sleep(MTIME_TICK_MS);
    writeFileSync(join(dir, 'new', `${1_700_000_000 + n}.M${n}P1.mua`), message(`mua ${n}`, `dropped ${n}\n`));
    const m = (await byUid(s, name)).at(-1)!;
    delivered.add(m.guid);
    return undefined;
  }
  if (c.kind === 'save') {
    const n = ++counter.n;
    const [saved] = await s.saveMessages(name, [req(message(`m${n}`, `body ${n}\n`), { flags: c.flags, keywords: c.keywords, ...(guid ? { guid } : {}) })]);
    delivered.add(saved!.guid);
    return saved!.guid;
  }
  const messages = await byUid(s, name);
  if (messages.length === 0) return undefined;
  const m = messages[c.msg % messages.length]!;
  switch (c.kind) {
    case 'flags':
      await s.updateFlags(name, [{ uid: m.uid, flags: c.flags, keywords: m.keywords }]);
      return undefined;
    case 'keywords':
      await s.updateFlags(name, [{ uid: m.uid, flags: m.flags, keywords: c.keywords }]);
      return undefined;
    case 'expunge':
      expunged.add(m.guid);
      await s.expunge(name, [m.uid]);
      return undefined;
    case 'mua-flags':
    case 'mua-delete': {
      const file = fileOf(dir, m.uid);
      await sleep(MTIME_TICK_MS);
      if (c.kind === 'mua-delete') {
        expunged.add(m.guid);
        unlinkSync(file);
      } else {
        // Keyword letters stay; the flag letters are the new ones.
        const keep = /:2,(.*)$/.exec(file)?.[1]?.replace(/[^a-z]/g, '') ?? '';
        const base = file.split('/').at(-1)!.split(':')[0]!;
        renameSync(file, join(dir, 'cur', `${base}:2,${[...c.flags.map((f) => FLAG_LETTERS[f]), ...keep].sort().join('')}`));
      }
      return undefined;
    }
    case 'copy':
    case 'move': {
      const to = c.kind === 'copy' ? name : BOXES[c.to]!;
      if (c.kind === 'move' && c.to === c.box) return undefined;
      const body = await readAll(await s.openMessage(name, m.uid));
      const [saved] = await s.saveMessages(to, [req(body, { guid: guid ?? m.guid, flags: m.flags, keywords: m.keywords, receivedDate: m.receivedDate })]);
      delivered.add(saved!.guid);
      if (c.kind === 'move') await s.expunge(name, [m.uid]);
      return saved!.guid;
    }
  }
}

/**
 * A directory's mtime moves by clock ticks, not nanoseconds: a change in the tick of the store's
 * last look could hide from it within this process. Another program waits as long first.
 */
const MTIME_TICK_MS = 12;
const FLAG_LETTERS: Record<SystemFlag, string> = { '\\Draft': 'D', '\\Flagged': 'F', '\\Answered': 'R', '\\Seen': 'S', '\\Deleted': 'T' };

/** The file of a UID, by the uidlist (after its header, `<uid> [fields] :<base name>`). */
function fileOf(dir: string, uid: number): string {
  const line = readFileSync(join(dir, 'dovecot-uidlist'), 'utf8').split('\n').slice(1).find((l) => l.startsWith(`${uid} `));
  const base = line?.slice(line.indexOf(' :') + 2);
  for (const sub of ['cur', 'new']) {
    const hit = base && readdirSync(join(dir, sub)).find((f) => f === base || f.startsWith(`${base}:`));
    if (hit) return join(dir, sub, hit);
  }
  throw new Error(`no file for UID ${uid} in ${dir}`);
}

/** Everything the engine keeps equal, per side and mailbox; modseqs are each store's own. */
async function state(w: World): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const sd of ['A', 'B'] as const) {
    for (const name of BOXES) {
      const st = (await w.stores[sd].mailboxStatus(name))!;
      const msgs = (await byUid(w.stores[sd], name)).map((m) => `${m.uid} ${m.guid} ${[...m.flags].sort().join(',')} ${[...m.keywords].sort().join(',')}`);
      out[`${sd} ${name.join('/')}`] = { uidValidity: st.uidValidity, uidNext: st.uidNext, msgs };
    }
  }
  return out;
}

async function runHistory(ops: Op[]): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-incremental-'));
  const roots = (world: string): Record<Side, string> => ({ A: join(dir, world, 'a'), B: join(dir, world, 'b') });
  const hooks: Record<'inc' | 'whole', Record<Side, Hook>> = { inc: { A: {}, B: {} }, whole: { A: {}, B: {} } };
  const open = (world: 'inc' | 'whole'): World => {
    const w: World = { stores: {} as Record<Side, MailStore>, roots: roots(world), wholeListings: 0, partialReads: 0, counting: false };
    for (const sd of ['A', 'B'] as const) w.stores[sd] = watched(openMaildir(roots(world)[sd]), w, hooks[world][sd]);
    return w;
  };
  const closeWorld = async (w: World) => {
    await w.stores.A.close();
    await w.stores.B.close();
  };
  // One synced pair with mail in every folder, then copied whole (indexes included): two worlds
  // that agree on every GUID, UID and modseq.
  const counter = { n: 0 };
  const delivered = new Set<string>();
  const expunged = new Set<string>();
  let inc = open('inc');
  for (const name of BOXES.slice(1)) await inc.stores.A.createMailbox(name);
  for (const sd of ['A', 'B'] as const) {
    for (const i of BOXES.keys()) {
      for (let k = 0; k < 3; k++) await applyChange({ kind: 'save', side: sd, box: i, flags: k % 2 ? ['\\Seen'] : [], keywords: [] }, inc, counter, delivered, expunged);
    }
    await runSync(inc.stores.A, inc.stores.B);
  }
  await closeWorld(inc);
  cpSync(join(dir, 'inc'), join(dir, 'whole'), { recursive: true });
  inc = open('inc');
  const whole = open('whole');
  try {
    for (const o of ops) {
      if (o.kind !== 'sync') {
        const guid = await applyChange(o, inc, counter, delivered, expunged);
        await applyChange(o, whole, { n: counter.n - (o.kind === 'save' || o.kind === 'mua-deliver' ? 1 : 0) }, delivered, expunged, guid);
        continue;
      }
      const results = [];
      // The change between a side's readings: in the incremental world where it first reads
      // changes on that side, in the whole one just before its run in the same mailbox (a
      // reading it must not trust is one it must redo whole); after both runs if never read.
      const between = o.between;
      let betweenBox: number | undefined;
      let betweenGuid: string | undefined;
      const betweenN = counter.n;
      if (between) {
        hooks.inc[between.side].between = async (name) => {
          betweenBox = BOXES.findIndex((b) => b.join('/') === name.join('/'));
          inc.counting = false;
          betweenGuid = await applyChange({ ...between, box: betweenBox }, inc, { n: betweenN }, delivered, expunged);
          inc.counting = true;
        };
      }
      for (const [w, hook, noIncremental] of [[inc, hooks.inc, false], [whole, hooks.whole, true]] as const) {
        if (between && w === whole && betweenBox !== undefined) await applyChange({ ...between, box: betweenBox }, whole, { n: betweenN }, delivered, expunged, betweenGuid);
        if (o.during) {
          const during = o.during;
          const n = counter.n;
          // The same change in both worlds, the second save under the first one's GUID.
          hook[during.side === 'A' ? 'B' : 'A'].during = async () => {
            w.counting = false;
            const guid = await applyChange(during, w, { n }, delivered, expunged, w === whole ? lastDuringGuid : undefined);
            if (w === inc) lastDuringGuid = guid;
            w.counting = true;
          };
        }
        const [first, second] = o.reverse ? [w.stores.B, w.stores.A] : [w.stores.A, w.stores.B];
        w.counting = true;
        const r = await runSync(first, second, { noIncremental });
        w.counting = false;
        hook.A.during = hook.B.during = undefined;
        hook.A.between = hook.B.between = undefined;
        results.push({ changedDuringSync: r.changedDuringSync, saved: r.saved, expunged: r.expunged, flagUpdates: r.flagUpdates });
      }
      if (o.during?.kind === 'save' || o.during?.kind === 'mua-deliver') counter.n++;
      if (between && betweenBox === undefined) {
        const guid = await applyChange(between, inc, { n: betweenN }, delivered, expunged);
        await applyChange(between, whole, { n: betweenN }, delivered, expunged, guid);
      }
      if (between?.kind === 'save' || between?.kind === 'mua-deliver') counter.n++;
      assert.deepEqual(results[0], results[1], 'the incremental run did what the whole comparison did');
      assert.deepEqual(await state(inc), await state(whole), 'after the same history, both worlds are in the same state');
    }
    // Then until in sync (a change during the last run leaves work for the next).
    for (const w of [inc, whole]) {
      for (let i = 0; i < 3; i++) if (!(await runSync(w.stores.A, w.stores.B, { noIncremental: w === whole })).changedDuringSync) break;
    }
    const end = (await state(inc)) as Record<string, { msgs: string[] }>;
    assert.deepEqual(end, await state(whole), 'both worlds end in the same state');
    const held = new Set<string>();
    for (const name of BOXES) {
      assert.deepEqual(end[`A ${name.join('/')}`], end[`B ${name.join('/')}`], `both sides of ${name.join('/')} are equal`);
      for (const line of end[`A ${name.join('/')}`]!.msgs) held.add(line.split(' ')[1]!);
    }
    for (const g of delivered) if (!expunged.has(g)) assert.ok(held.has(g), `message ${g} was delivered and never expunged, yet it is lost`);
    totals.partialReads += inc.partialReads;
    totals.wholeListings += inc.wholeListings;
  } finally {
    await closeWorld(inc);
    await closeWorld(whole);
    await rm(dir, { recursive: true, force: true });
  }
}

let lastDuringGuid: string | undefined;
const totals = { partialReads: 0, wholeListings: 0 };

it('random histories end the same whether synced incrementally or compared whole', { timeout: 300_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 20 }), (ops) => runHistory(ops)),
    {
      numRuns: Number(process.env.INCREMENTAL_RANDOM_RUNS ?? (process.env.MAILFERRY_SOAK === '1' ? 400 : 40)),
      ...(process.env.INCREMENTAL_RANDOM_SEED ? { seed: Number(process.env.INCREMENTAL_RANDOM_SEED) } : {}),
      includeErrorInReport: true,
    },
  );
  // Not a test of nothing: the default runs really read changes only, most of the time.
  assert.ok(totals.partialReads > 0, 'the incremental world read only what changed at least once');
});
