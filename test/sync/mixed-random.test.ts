/**
 * Random first syncs of a Maildir and an mbox: fast-check picks two sets of SpamAssassin corpus
 * messages (disjoint, overlapping or the same; either may be empty), whether the two INBOXes
 * share a UIDVALIDITY or which one's is lower, and which store is passed first. After one run (or
 * two, when the first reports a change under it) both sides hold the union of the two sets, each
 * message exactly once by its body; the run after that changes nothing and reports nothing new.
 *
 * Default: 16 cases from 24 corpus messages, about 15 s. MAILFERRY_SOAK=1: 150 cases from 200.
 * MIXED_RANDOM_SEED reproduces a failure.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { it } from 'node:test';
import fc from 'fast-check';
import type { MailStore } from '../../src/storage/store.js';
import { runSync, type SyncResult } from '../../src/sync/sync.js';
import { corpusMessages } from '../support/corpus.js';
import { bodyCounts, bodyHash, fill, mixedPair } from './mixed-pair.js';

const SOAK = process.env.MAILFERRY_SOAK === '1';
const POOL = SOAK ? 200 : 24;
const RUNS = SOAK ? 150 : 16;

/** Corpus messages told apart by body (so "once by body" is a fair count), in corpus order. */
function pool(): Buffer[] {
  const seen = new Set<string>();
  return corpusMessages(POOL).filter((m) => {
    const h = bodyHash(m);
    if (seen.has(h)) return false;
    seen.add(h);
    return true;
  });
}

interface Case {
  inA: number[];
  inB: number[];
  /** UIDVALIDITY of the Maildir's and the mbox's INBOX. */
  uidValidity: [number, number];
  mboxFirst: boolean;
}

function arbitraryCase(size: number): fc.Arbitrary<Case> {
  const indexes = [...Array(size).keys()];
  const maxLength = Math.min(size, SOAK ? 60 : 10);
  const subset = fc.subarray(indexes, { maxLength });
  const sets = fc.oneof(
    // Disjoint: one draw split in two, so both sides have their own mail at UIDs 1.. .
    subset.chain((s) => fc.nat({ max: s.length }).map((cut) => [s.slice(0, cut), s.slice(cut)] as const)),
    fc.tuple(subset, subset),
    subset.map((s) => [s, s] as const),
  );
  const uidValidity = fc.constantFrom<[number, number]>([1000, 1000], [1000, 2000], [2000, 1000]);
  return fc.record({ sets, uidValidity, mboxFirst: fc.boolean() }, { noNullPrototype: true }).map(({ sets: [inA, inB], uidValidity, mboxFirst }) => ({ inA: [...inA], inB: [...inB], uidValidity, mboxFirst }));
}

async function runCase(mail: readonly Buffer[], c: Case): Promise<void> {
  const pair = await mixedPair('mixed-random');
  const sync = (a: MailStore, b: MailStore): Promise<SyncResult> => (c.mboxFirst ? runSync(b, a) : runSync(a, b));
  try {
    let [a, b] = [pair.openA(), pair.openB()];
    try {
      await fill(a, c.uidValidity[0], c.inA.map((i) => mail[i]!));
      await fill(b, c.uidValidity[1], c.inB.map((i) => mail[i]!));
      const first = await sync(a, b);
      if (first.changedDuringSync) assert.equal((await sync(a, b)).changedDuringSync, false, 'the second run settles');
      const union = [...new Set([...c.inA, ...c.inB].map((i) => bodyHash(mail[i]!)))].sort();
      for (const [label, s] of [['maildir', a], ['mbox', b]] as const) {
        const counts = await bodyCounts(s);
        assert.deepEqual([...counts.keys()].sort(), union, `${label} holds the union`);
        assert.deepEqual([...counts].filter(([, n]) => n > 1).length, 0, `${label} holds each message once`);
      }
    } finally {
      await a.close();
      await b.close();
    }
    // A fresh process's view: the mbox reads its file and index again.
    [a, b] = [pair.openA(), pair.openB()];
    try {
      const again = await sync(a, b);
      assert.deepEqual([again.saved, again.expunged, again.flagUpdates, again.treeActions, again.changedDuringSync], [0, 0, 0, 0, false], 'the next run changes nothing');
    } finally {
      await a.close();
      await b.close();
    }
  } finally {
    await rm(pair.dir, { recursive: true, force: true });
  }
}

it(`two-way Maildir <-> mbox sync from random corpus subsets settles with every message once (${RUNS} cases)`, { timeout: SOAK ? 3_600_000 : 120_000 }, async () => {
  const mail = pool();
  const seed = process.env.MIXED_RANDOM_SEED ? Number(process.env.MIXED_RANDOM_SEED) : undefined;
  await fc.assert(
    fc.asyncProperty(arbitraryCase(mail.length), (c) => runCase(mail, c)),
    { numRuns: RUNS, ...(seed !== undefined ? { seed } : {}) },
  );
});
