/**
 * The incremental path against the whole comparison: fast-check builds random histories
 * (deliveries with flags and keywords, flag and keyword changes, expunges, a second copy of a
 * message under its GUID, moves between folders keeping the GUID, on both sides, between syncs
 * and during them) and plays each in two copies of one synced pair of Maildirs: one synced as
 * the engine does by default, reading only what changed since the last proven sync, the other
 * with every changed mailbox listed and compared whole. After every sync both copies must be
 * in exactly the same state (UIDs, GUIDs, flags, keywords, UIDNEXT, on both sides) and have
 * said the same about changes during the run; at the end each pair is equal, nothing delivered
 * and not deliberately expunged is lost, and the incremental copy must really have read
 * changes only (counted through a wrapper of its stores).
 *
 * INCREMENTAL_RANDOM_RUNS (default 40, a few seconds; 400 with MAILFERRY_SOAK=1) and
 * INCREMENTAL_RANDOM_SEED widen or reproduce a search.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import fc from 'fast-check';
import { SYSTEM_FLAGS, type MailboxName, type MailStore, type SystemFlag } from '../../src/storage/store.js';
import { runSync } from '../../src/sync/sync.js';
import { message, readAll, req } from '../contract/store-contract.js';
import { openMaildir } from './maildir-pair.js';

type Side = 'A' | 'B';
type Change =
  | { kind: 'save'; side: Side; box: number; flags: SystemFlag[]; keywords: string[] }
  | { kind: 'flags'; side: Side; box: number; msg: number; flags: SystemFlag[] }
  | { kind: 'keywords'; side: Side; box: number; msg: number; keywords: string[] }
  | { kind: 'expunge'; side: Side; box: number; msg: number }
  | { kind: 'copy'; side: Side; box: number; msg: number }
  | { kind: 'move'; side: Side; box: number; msg: number; to: number };
/** `during`: a change made by someone else once the run has started to apply its plan. */
type Op = Change | { kind: 'sync'; reverse: boolean; during?: Change };

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
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: change },
  { weight: 2, arbitrary: rec({ kind: fc.constant('sync' as const), reverse: fc.boolean() }) },
  { weight: 1, arbitrary: rec({ kind: fc.constant('sync' as const), reverse: fc.boolean(), during: change }) },
);

interface World {
  stores: Record<Side, MailStore>;
  /** Whole listings (getMessages without a modseq) the engine asked for. */
  wholeListings: number;
  /** Reads of only some messages (getMessagesOf). */
  partialReads: number;
  /** Counting on: only while the engine runs. */
  counting: boolean;
}

/** The store as the engine sees it, counting its listings; `during` runs once, after the first write. */
function watched(store: MailStore, world: World, hook: { during?: () => Promise<void> }): MailStore {
  const write = (name: 'saveMessages' | 'updateFlags' | 'expunge') => async (...args: unknown[]) => {
    const out = await (store[name] as (...a: unknown[]) => Promise<unknown>)(...args);
    const during = hook.during;
    hook.during = undefined;
    if (during) await during();
    return out;
  };
  const own: Partial<Record<keyof MailStore, unknown>> = {
    getMessages: (name: MailboxName, since?: number) => {
      if (world.counting && since === undefined) world.wholeListings++;
      return store.getMessages(name, since);
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
  const hooks: Record<'inc' | 'whole', Record<Side, { during?: () => Promise<void> }>> = { inc: { A: {}, B: {} }, whole: { A: {}, B: {} } };
  const open = (world: 'inc' | 'whole'): World => {
    const w: World = { stores: {} as Record<Side, MailStore>, wholeListings: 0, partialReads: 0, counting: false };
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
        await applyChange(o, whole, { n: counter.n - (o.kind === 'save' ? 1 : 0) }, delivered, expunged, guid);
        continue;
      }
      const results = [];
      for (const [w, hook, noIncremental] of [[inc, hooks.inc, false], [whole, hooks.whole, true]] as const) {
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
        results.push({ changedDuringSync: r.changedDuringSync, saved: r.saved, expunged: r.expunged, flagUpdates: r.flagUpdates });
      }
      if (o.during?.kind === 'save') counter.n++;
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
