/**
 * Random schedules of concurrent runs: several `sync` runs of the built CLI on one Maildir pair
 * at once (either direction, no -l, so each waits for the run lock as a cron job would), while
 * mail is delivered, flagged and deleted on both sides as an LDA and a MUA do it on disk. Every
 * run exits 0, 2 (the mailbox changed under it, as dsync says) or 75 (the lock wait ran out),
 * never with a stack trace; one more sync afterwards leaves both sides holding every message
 * nobody deleted, once, in its folder, a deleted one on both sides or on neither, the same flags
 * on both sides, and a sync after that changes nothing.
 *
 * CONCURRENT_RANDOM_RUNS (default 3; 20 with MAILFERRY_SOAK=1) widens the search;
 * CONCURRENT_RANDOM_SEED replays one.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { it } from 'node:test';
import fc from 'fast-check';
import { cli, cliChild, deliver } from './cli-child.js';

type Side = 'a' | 'b';
/** INBOX and one folder (Maildir++). */
const FOLDERS = ['', '.Work'] as const;

type Op =
  | { kind: 'deliver'; side: Side; folder: number; count: number; pause: number }
  | { kind: 'flags'; side: Side; folder: number; pick: number; letters: string; pause: number }
  | { kind: 'expunge'; side: Side; folder: number; pick: number; pause: number };

interface Run {
  reverse: boolean;
  /** ms after the schedule starts. */
  at: number;
}

const side = fc.constantFrom<Side>('a', 'b');
const folder = fc.nat({ max: FOLDERS.length - 1 });
const pause = fc.nat({ max: 40 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('deliver' as const), side, folder, count: fc.integer({ min: 1, max: 5 }), pause }, { noNullPrototype: true }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flags' as const), side, folder, pick: fc.nat(), letters: fc.subarray(['F', 'R', 'S', 'T']).map((l) => l.join('')), pause }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('expunge' as const), side, folder, pick: fc.nat(), pause }, { noNullPrototype: true }) },
);
const schedule = fc.record({
  runs: fc.array(fc.record({ reverse: fc.boolean(), at: fc.nat({ max: 1000 }) }, { noNullPrototype: true }), { minLength: 2, maxLength: 4 }),
  ops: fc.array(op, { minLength: 5, maxLength: 30 }),
}, { noNullPrototype: true });

/** Message files of one folder as a MUA lists them: racing a sync's own renames is the point. */
function filesIn(dir: string): string[] {
  return ['new', 'cur'].flatMap((sub) => {
    try {
      return readdirSync(join(dir, sub)).sort().map((f) => join(dir, sub, f));
    } catch {
      return [];
    }
  });
}

function subjectOf(path: string): string | undefined {
  try {
    return /^Subject: (.*)$/m.exec(readFileSync(path, 'utf8'))?.[1];
  } catch {
    return undefined; // renamed or deleted meanwhile
  }
}

/** Subject -> "folder flags" for every message of one side, and the subjects it holds more than once. */
function holdings(root: string): { bySubject: Map<string, string>; twice: string[] } {
  const bySubject = new Map<string, string>();
  const twice: string[] = [];
  for (const f of FOLDERS) {
    for (const path of filesIn(join(root, f))) {
      const subject = subjectOf(path) ?? `? ${path}`;
      const flags = /:2,([A-Z]*)/.exec(path.slice(path.lastIndexOf('/')))?.[1] ?? '';
      if (bySubject.has(subject)) twice.push(subject);
      bySubject.set(subject, `${f || 'INBOX'} ${flags}`);
    }
  }
  return { bySubject, twice };
}

/** What a MUA does: a rename to other flag letters, or an unlink. A file a run moved meanwhile is simply missed. */
function muaChange(root: string, o: Extract<Op, { kind: 'flags' | 'expunge' }>, expunged: Set<string>): void {
  const files = filesIn(join(root, FOLDERS[o.folder]!));
  if (files.length === 0) return;
  const path = files[o.pick % files.length]!;
  const subject = subjectOf(path);
  if (subject === undefined) return;
  try {
    if (o.kind === 'expunge') {
      unlinkSync(path);
      expunged.add(subject);
    } else {
      const name = path.slice(path.lastIndexOf('/') + 1);
      renameSync(path, join(root, FOLDERS[o.folder]!, 'cur', `${name.split(':')[0]}:2,${o.letters}`));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

const STACK = /SqliteError|database is locked|\n\s+at |TypeError|RangeError|Unhandled/;

async function runSchedule(runs: Run[], ops: Op[]): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-concurrent-random-'));
  const roots: Record<Side, string> = { a: join(dir, 'a'), b: join(dir, 'b') };
  const pair = (reverse: boolean) => (reverse ? [`maildir:${roots.b}`, `maildir:${roots.a}`] : [`maildir:${roots.a}`, `maildir:${roots.b}`]);
  try {
    const delivered = new Set<string>();
    const expunged = new Set<string>();
    for (const s of ['a', 'b'] as const) for (const f of FOLDERS) for (const x of deliver(join(roots[s], f), 20, `${s}-start`)) delivered.add(x);
    const first = cli(['sync', ...pair(false)]);
    assert.equal(first.code, 0, first.stderr);

    const started = Date.now();
    const children = runs.map(async (r) => {
      await sleep(r.at);
      const c = cliChild(['sync', ...pair(r.reverse)]);
      return { run: r, code: await c.exited, stderr: () => c.output.stderr };
    });
    let running = runs.length;
    for (const c of children) void c.then(() => running--);
    // The schedule's changes, over and over while runs are still going (a few times at most).
    for (let pass = 0; pass === 0 || (running > 0 && pass < 4); pass++) {
      for (const o of ops) {
        if (o.kind === 'deliver') for (const x of deliver(join(roots[o.side], FOLDERS[o.folder]!), o.count, `${o.side}-late`)) delivered.add(x);
        else muaChange(roots[o.side], o, expunged);
        await sleep(o.pause);
      }
    }
    const ended = await Promise.all(children);
    for (const e of ended) {
      assert.ok([0, 2, 75].includes(e.code), `run ${JSON.stringify(e.run)} exit ${e.code}: ${e.stderr()}`);
      assert.doesNotMatch(e.stderr(), STACK, `run ${JSON.stringify(e.run)}: ${e.stderr()}`);
    }
    assert.ok(Date.now() - started < 60_000, 'the runs ended in reasonable time');

    // Changes that arrived during a run need another one (exit 2); then both sides agree.
    let last = cli(['sync', ...pair(false)]);
    for (let tries = 0; last.code === 2 && tries < 3; tries++) last = cli(['sync', ...pair(false)]);
    assert.equal(last.code, 0, last.stderr);
    assert.doesNotMatch(last.stderr, STACK);

    const [ha, hb] = [holdings(roots.a), holdings(roots.b)];
    assert.deepEqual(ha.twice, [], 'no message twice in A');
    assert.deepEqual(hb.twice, [], 'no message twice in B');
    for (const subject of delivered) {
      if (expunged.has(subject)) {
        assert.equal(ha.bySubject.has(subject), hb.bySubject.has(subject), `${subject}, deleted on one side, is on one side only`);
        continue;
      }
      assert.ok(ha.bySubject.has(subject), `${subject} lost in A`);
      assert.ok(hb.bySubject.has(subject), `${subject} lost in B`);
    }
    for (const subject of [...ha.bySubject.keys(), ...hb.bySubject.keys()]) assert.ok(delivered.has(subject), `${subject} came from nowhere`);
    const differ = [...new Set([...ha.bySubject.keys(), ...hb.bySubject.keys()])].filter((x) => ha.bySubject.get(x) !== hb.bySubject.get(x));
    assert.deepEqual(differ.map((x) => `${x}: A ${ha.bySubject.get(x) ?? '-'}, B ${hb.bySubject.get(x) ?? '-'}`), [], 'both sides hold the same messages in the same folders with the same flags');

    const again = cli(['sync', ...pair(false)]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(holdings(roots.a).bySubject, ha.bySubject, 'a sync after that changes nothing in A');
    assert.deepEqual(holdings(roots.b).bySubject, hb.bySubject, 'a sync after that changes nothing in B');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const soak = process.env.MAILFERRY_SOAK === '1';
const numRuns = Number(process.env.CONCURRENT_RANDOM_RUNS ?? (soak ? 20 : 3));
const seed = process.env.CONCURRENT_RANDOM_SEED ? { seed: Number(process.env.CONCURRENT_RANDOM_SEED) } : {};

it('concurrent syncs under deliveries, flag changes and deletions on both sides: no crash, nothing lost or doubled, both sides agree', { timeout: Math.max(300_000, numRuns * 20_000) }, async () => {
  await fc.assert(
    fc.asyncProperty(schedule, ({ runs, ops }) => runSchedule(runs, ops)),
    // Each case spawns several processes; shrinking would rerun them many times for little.
    { numRuns, ...seed, endOnFailure: true, includeErrorInReport: true },
  );
});
