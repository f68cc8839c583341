/**
 * What an incremental sync asks the stores for: after changes on both sides of a synced pair,
 * only changes and the records they name, never a whole listing; and a whole listing again
 * wherever the pair state is in doubt (`-f`, a state the two stores do not share, a side that
 * moved between the two readings), with the same end state.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { MailboxName, MailStore } from '../../src/storage/store.js';
import { runSync, type SyncOptions } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { ForeignStore } from '../support/foreign-store.js';
import { contents, INBOX, openMaildir, tempRoots } from './maildir-pair.js';

const SUB: MailboxName = ['Sub box'];

interface Counts {
  whole: number;
  since: number;
  partial: number;
}

/** The store, counting listings; `afterSince` runs once, right after a listing of changes. */
function counted(store: MailStore, counts: Counts, hook: { afterSince?: () => Promise<void> } = {}): MailStore {
  const own: Partial<Record<keyof MailStore, unknown>> = {
    getMessages: async (name: MailboxName, since?: number) => {
      if (since === undefined) counts.whole++;
      else counts.since++;
      const out = await store.getMessages(name, since);
      const after = since === undefined ? undefined : hook.afterSince;
      hook.afterSince = undefined;
      if (after) await after();
      return out;
    },
    getMessagesOf: (name: MailboxName, which: Parameters<NonNullable<MailStore['getMessagesOf']>>[1]) => {
      counts.partial++;
      return store.getMessagesOf!(name, which);
    },
  };
  return new Proxy(store, {
    get(target, prop) {
      if (Object.hasOwn(own, prop)) return own[prop as keyof MailStore];
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

async function syncedPair(prefix: string) {
  const roots = await tempRoots(prefix);
  const a = openMaildir(roots.a);
  const b = openMaildir(roots.b);
  await a.createMailbox(SUB);
  for (const box of [INBOX, SUB]) {
    await a.saveMessages(box, Array.from({ length: 40 }, (_, i) => req(message(`${box.join('')}-${i}`), { flags: i % 3 ? ['\\Seen'] : [] })));
  }
  await runSync(a, b);
  const done = async () => {
    await a.close();
    await b.close();
    await rm(roots.dir, { recursive: true, force: true });
  };
  return { a, b, done };
}

/** Two changes on each side, in both folders. */
async function changeBoth(a: MailStore, b: MailStore, tag: string): Promise<void> {
  await a.saveMessages(INBOX, [req(message(`new-a-${tag}`))]);
  const [first] = (await a.getMessages(SUB)).messages;
  await a.updateFlags(SUB, [{ uid: first!.uid, flags: ['\\Flagged'], keywords: ['work'] }]);
  const inB = (await b.getMessages(INBOX)).messages;
  await b.expunge(INBOX, [inB[5]!.uid]);
  await b.saveMessages(SUB, [req(message(`new-b-${tag}`))]);
}

async function syncCounting(a: MailStore, b: MailStore, options: SyncOptions = {}, hook?: { afterSince?: () => Promise<void> }) {
  const counts: Counts = { whole: 0, since: 0, partial: 0 };
  const result = await runSync(counted(a, counts, hook), counted(b, counts), options);
  return { counts, result };
}

async function assertEqual(a: MailStore, b: MailStore): Promise<void> {
  for (const box of [INBOX, SUB]) assert.deepEqual(await contents(b, box), await contents(a, box), `${box.join('/')} is the same on both sides`);
}

describe('incremental sync', () => {
  it('reads only what changed since the last sync: no whole listing', async () => {
    const { a, b, done } = await syncedPair('incr-count');
    try {
      await changeBoth(a, b, '1');
      const { counts, result } = await syncCounting(a, b);
      assert.equal(counts.whole, 0, 'no mailbox was listed whole');
      assert.ok(counts.partial >= 4, `each side's changed records were read (${counts.partial} reads)`);
      assert.deepEqual({ saved: result.saved, expunged: result.expunged, flagUpdates: result.flagUpdates, changed: result.changedDuringSync }, { saved: 2, expunged: 1, flagUpdates: 1, changed: false });
      await assertEqual(a, b);
      // And the state it recorded is one the next run trusts again.
      await changeBoth(b, a, '2');
      const again = await syncCounting(b, a);
      assert.equal(again.counts.whole, 0);
      await assertEqual(a, b);
    } finally {
      await done();
    }
  });

  it('lists whole with -f, and the counting sees it', async () => {
    const { a, b, done } = await syncedPair('incr-full');
    try {
      await changeBoth(a, b, '1');
      const { counts } = await syncCounting(a, b, { full: true });
      assert.ok(counts.whole >= 4, `every mailbox listed whole, twice per side (${counts.whole})`);
      assert.equal(counts.partial, 0);
      await assertEqual(a, b);
    } finally {
      await done();
    }
  });

  it('lists whole when the two stores do not share the pair state', async () => {
    const { a, b, done } = await syncedPair('incr-unshared');
    try {
      await changeBoth(a, b, '1');
      // B remembers another run than A does (its record was not written, or was lost).
      const theirs = await b.getPairState(a.storeId);
      const boxGuid = (await b.mailboxStatus(INBOX))!.guid;
      await b.setPairState(a.storeId, { [boxGuid]: { ...theirs[boxGuid]!, highestModseq: theirs[boxGuid]!.highestModseq - 1 } });
      const { counts, result } = await syncCounting(a, b);
      assert.ok(counts.whole >= 2, 'INBOX was compared whole');
      assert.equal(result.changedDuringSync, false);
      await assertEqual(a, b);
    } finally {
      await done();
    }
  });

  it('lists whole against a store that hands out its own UIDs and has no native GUIDs', async () => {
    const roots = await tempRoots('incr-foreign');
    const a = openMaildir(roots.a);
    const b = ForeignStore.open(roots.b);
    try {
      await a.saveMessages(INBOX, Array.from({ length: 20 }, (_, i) => req(message(`f${i}`))));
      await runSync(a, b);
      await a.saveMessages(INBOX, [req(message('new-a'))]);
      await b.saveMessages(INBOX, [req(message('new-b'))]);
      const { counts, result } = await syncCounting(a, b);
      assert.equal(counts.partial, 0, 'messages matched by header hash are never read in part');
      assert.ok(counts.whole >= 2);
      assert.equal(result.saved, 2);
      const guids = async (s: MailStore) => (await s.getMessages(INBOX)).messages.map((m) => m.guid).sort();
      assert.deepEqual(await guids(b), await guids(a));
    } finally {
      await a.close();
      await b.close();
      await rm(roots.dir, { recursive: true, force: true });
    }
  });

  it('lists whole when a side moves between its listing of changes and the records it names', async () => {
    const { a, b, done } = await syncedPair('incr-moved');
    try {
      await changeBoth(a, b, '1');
      // Mail expunged on A right after its changes were read: the records would lack it with no
      // expunge to explain it, and B's copy would look new.
      const victim = (await a.getMessages(INBOX)).messages[10]!;
      const hook = { afterSince: () => a.expunge(INBOX, [victim.uid]) };
      const { counts } = await syncCounting(a, b, {}, hook);
      assert.ok(counts.whole >= 2, 'the moved reading was refused and the mailbox listed whole');
      for (let i = 0; i < 2; i++) if (!(await runSync(a, b)).changedDuringSync) break;
      await assertEqual(a, b);
      assert.ok(!(await b.getMessages(INBOX)).messages.some((m) => m.guid === victim.guid), 'the expunge reached B and was not undone');
    } finally {
      await done();
    }
  });
});
