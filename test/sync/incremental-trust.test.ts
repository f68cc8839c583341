/**
 * Only a pair state a two-way sync proved is planned from incrementally. A state recorded
 * without that proof (by a backup that counts the same mail under other GUIDs as equal, by a
 * mailferry that recorded statuses read after its check, by a `-s` run for what it skipped)
 * is compared whole once: each case is synced incrementally and whole from two copies of one
 * pair, and both must end in the same state, which the next run then records as proven.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import type { MailboxName, MailStore, PairMailboxState } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { INBOX, openMaildir, tempRoots } from './maildir-pair.js';

async function listing(s: MailStore): Promise<string[]> {
  const st = (await s.mailboxStatus(INBOX))!;
  return [`uidNext ${st.uidNext}`, ...(await s.getMessages(INBOX)).messages.map((m) => `${m.uid} ${m.guid} ${[...m.flags].sort().join(',')}`)];
}

/** Counts whole listings of INBOX, to tell which path a run took. */
function counting(store: MailStore, c: { whole: number }): MailStore {
  return new Proxy(store, {
    get(t, p) {
      if (p === 'getMessages') return (n: MailboxName, s?: number) => (s === undefined && c.whole++, t.getMessages(n, s));
      const v = Reflect.get(t, p, t) as unknown;
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

/** Syncs the pair as it is (incremental allowed) and a copy of it whole; both end states, and the whole listings of the first. */
async function bothWays(dir: string, roots: { a: string; b: string }) {
  cpSync(roots.a, join(dir, 'wa'), { recursive: true });
  cpSync(roots.b, join(dir, 'wb'), { recursive: true });
  const out: Record<string, { a: string[]; b: string[]; exit2: boolean }> = {};
  const listed = { whole: 0 };
  for (const [label, ra, rb, noIncremental] of [['incremental', roots.a, roots.b, false], ['whole', join(dir, 'wa'), join(dir, 'wb'), true]] as const) {
    const a = openMaildir(ra);
    const b = openMaildir(rb);
    try {
      const r = await runSync(noIncremental ? a : counting(a, listed), b, { noIncremental });
      out[label] = { a: await listing(a), b: await listing(b), exit2: r.changedDuringSync };
    } finally {
      await a.close();
      await b.close();
    }
  }
  return { incremental: out.incremental!, whole: out.whole!, listedWhole: listed.whole };
}

/** After a run that compared whole, the state is proven and a change is synced from it incrementally. */
async function provenAfterwards(roots: { a: string; b: string }): Promise<void> {
  const a = openMaildir(roots.a);
  const b = openMaildir(roots.b);
  try {
    const box = (await a.mailboxStatus(INBOX))!.guid;
    assert.equal((await a.getPairState(b.storeId))[box]?.proven, true);
    assert.equal((await b.getPairState(a.storeId))[box]?.proven, true);
    await b.saveMessages(INBOX, [req(message('after-proof'))]);
    const listed = { whole: 0 };
    const r = await runSync(counting(a, listed), b);
    assert.equal(r.changedDuringSync, false);
    assert.equal(listed.whole, 0, 'a proven state is planned from incrementally');
    assert.deepEqual(await listing(a), await listing(b));
  } finally {
    await a.close();
    await b.close();
  }
}

it('a backup that took the same mail under two GUIDs for equal records no proven state: the next sync carries both', async () => {
  const roots = await tempRoots('incr-trust-backup');
  try {
    const a = openMaildir(roots.a);
    const b = openMaildir(roots.b);
    await a.saveMessages(INBOX, [req(message('seed'))]);
    await runBackup(a, b);
    // The same mail at UID 2 on both sides under two GUIDs (another program copied it to B).
    await a.saveMessages(INBOX, [req(message('same'))]);
    await b.saveMessages(INBOX, [req(message('same'))]);
    const r = await runBackup(a, b);
    assert.equal(r.changedDuringSync, false);
    const box = (await a.mailboxStatus(INBOX))!.guid;
    const recorded = (await a.getPairState(b.storeId))[box];
    assert.ok(recorded, 'the backup recorded the two-way state');
    assert.equal(recorded.proven, undefined);
    assert.equal((await b.getPairState(a.storeId))[box]?.proven, undefined);
    await a.saveMessages(INBOX, [req(message('later'))]);
    await a.close();
    await b.close();
    const out = await bothWays(roots.dir, roots);
    assert.deepEqual(out.incremental, out.whole, 'the incremental run ends where the whole comparison ends');
    assert.ok(out.listedWhole > 0, 'compared whole');
    assert.deepEqual(out.incremental.a, out.incremental.b);
    assert.equal(out.incremental.a.length, 1 + 4, 'seed, both GUIDs of the same mail, later');
    await provenAfterwards(roots);
  } finally {
    await rm(roots.dir, { recursive: true, force: true });
  }
});

it('a backup whose check found the source\'s messages at their UIDs under their own GUIDs records a proven state: the next sync after changes on both sides is incremental', async () => {
  const roots = await tempRoots('incr-trust-exact-backup');
  try {
    const a = openMaildir(roots.a);
    const b = openMaildir(roots.b);
    await a.createMailbox(['Other']);
    await a.saveMessages(INBOX, Array.from({ length: 4 }, (_, i) => req(message(`m${i}`))));
    await a.saveMessages(['Other'], [req(message('o1'))]);
    const r = await runBackup(a, b);
    assert.equal(r.changedDuringSync, false);
    const box = (await a.mailboxStatus(INBOX))!.guid;
    assert.equal((await a.getPairState(b.storeId))[box]?.proven, true);
    assert.equal((await b.getPairState(a.storeId))[box]?.proven, true);
    // A second backup that skips the unchanged mailboxes keeps them as proven as they were.
    await runBackup(a, b);
    assert.equal((await b.getPairState(a.storeId))[box]?.proven, true);
    const [first, second] = (await a.getMessages(INBOX)).messages;
    await a.updateFlags(INBOX, [{ uid: first!.uid, flags: ['\\Seen'], keywords: [] }]);
    await a.saveMessages(INBOX, [req(message('new-on-a'))]);
    await b.expunge(INBOX, [second!.uid]);
    await b.saveMessages(INBOX, [req(message('new-on-b'))]);
    await a.close();
    await b.close();
    const out = await bothWays(roots.dir, roots);
    assert.deepEqual(out.incremental, out.whole, 'the incremental run ends where the whole comparison ends');
    assert.equal(out.listedWhole, 0, 'planned from the changes alone');
    assert.deepEqual(out.incremental.a, out.incremental.b);
    assert.equal(out.incremental.a.length, 1 + 4 - 1 + 2);
  } finally {
    await rm(roots.dir, { recursive: true, force: true });
  }
});

it('a state without the proof mark that names mail only one side got (as an older mailferry recorded): the mail reaches B', async () => {
  const roots = await tempRoots('incr-trust-stale');
  try {
    const a = openMaildir(roots.a);
    const b = openMaildir(roots.b);
    await a.saveMessages(INBOX, Array.from({ length: 3 }, (_, i) => req(message(`m${i}`))));
    await runSync(a, b);
    // Delivered between an older run's check and its reading of the statuses it recorded.
    await a.saveMessages(INBOX, [req(message('delivered-during-old-run'))]);
    const box = (await a.mailboxStatus(INBOX))!.guid;
    const [sa, sb] = [(await a.mailboxStatus(INBOX))!, (await b.mailboxStatus(INBOX))!];
    const s: PairMailboxState = { uidValidity: sa.uidValidity, uidNext: sa.uidNext, highestModseq: sa.highestModseq, peerUidValidity: sb.uidValidity, peerUidNext: sb.uidNext, peerHighestModseq: sb.highestModseq };
    await a.setPairState(b.storeId, { [box]: s });
    await b.setPairState(a.storeId, { [box]: { uidValidity: s.peerUidValidity, uidNext: s.peerUidNext, highestModseq: s.peerHighestModseq, peerUidValidity: s.uidValidity, peerUidNext: s.uidNext, peerHighestModseq: s.highestModseq } });
    const [first] = (await b.getMessages(INBOX)).messages;
    await b.updateFlags(INBOX, [{ uid: first!.uid, flags: ['\\Seen'], keywords: [] }]);
    await a.close();
    await b.close();
    const out = await bothWays(roots.dir, roots);
    assert.deepEqual(out.incremental, out.whole, 'the incremental run ends where the whole comparison ends');
    assert.deepEqual(out.incremental.a, out.incremental.b);
    assert.equal(out.incremental.b.length, 1 + 4, 'B holds the delivered message');
    await provenAfterwards(roots);
  } finally {
    await rm(roots.dir, { recursive: true, force: true });
  }
});

it('a -s run records what it skipped unproven and what it compared proven; sync -1 records nothing proven', async () => {
  const roots = await tempRoots('incr-trust-s');
  try {
    const a = openMaildir(roots.a);
    const b = openMaildir(roots.b);
    await a.createMailbox(['Other']);
    await a.saveMessages(INBOX, [req(message('one'))]);
    await a.saveMessages(['Other'], [req(message('two'))]);
    const first = await runSync(a, b);
    const [inbox, other] = [(await a.mailboxStatus(INBOX))!.guid, (await a.mailboxStatus(['Other']))!.guid];
    // The caller's state skips INBOX (its numbers are the current ones) and not Other.
    const given = { [inbox]: first.state[inbox]! };
    await a.saveMessages(['Other'], [req(message('three'))]);
    const r = await runSync(a, b, { state: given });
    assert.equal(r.skipped, 1);
    for (const [s, peer] of [[a, b], [b, a]] as const) {
      const st = await s.getPairState(peer.storeId);
      assert.equal(st[inbox]?.proven, undefined, 'the caller-given state of a skipped mailbox is not proof');
      assert.equal(st[other]?.proven, true, 'a mailbox the run compared and checked is');
    }
    await a.saveMessages(INBOX, [req(message('four'))]);
    await runSync(a, b, { mode: 'oneway' });
    assert.equal((await b.getPairState(`${a.storeId}:oneway`))[inbox]?.proven, undefined);
    // The next two-way run compares INBOX whole once and proves it.
    const listed = { whole: 0 };
    const again = await runSync(counting(a, listed), b);
    assert.equal(again.changedDuringSync, false);
    assert.equal((await a.getPairState(b.storeId))[inbox]?.proven, true);
    assert.deepEqual(await listing(a), await listing(b));
    await a.close();
    await b.close();
  } finally {
    await rm(roots.dir, { recursive: true, force: true });
  }
});
