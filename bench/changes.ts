/**
 * Case 3's "1% changes on both sides": new mail, flag changes and expunges, made the way a
 * delivery agent and a mail client make them on a Maildir (a file through tmp/ into new/, a
 * rename, an unlink). Neither tool's index hears of them, so both must find them by scanning,
 * exactly as after a real day of mail. The same plan is applied to each tool's pair.
 *
 * The two sides' changes never touch the same message: when both sides change one message the
 * tools may legitimately resolve the conflict differently, and the result could not be checked.
 */
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanCorpus, rng, variant } from './data.js';
import { addToTally, flagNames, listMessages, mailboxDirs, readKeywordMap, readUidlist, type Tally } from './maildir-files.js';

interface Target { mailbox: string; uid: number }
export interface SidePlan {
  side: 'src' | 'dst';
  expunge: Target[];
  /** Toggle \Flagged, and \Seen too when `seen`. */
  flag: (Target & { seen: boolean })[];
  add: { mailbox: string; body: Buffer }[];
}
export interface ChangePlan { src: SidePlan; dst: SidePlan; perSide: number }

/** Chooses `fraction` of the messages per side from the master's UIDs (both tools' copies keep them). */
export function planChanges(master: string, fraction: number, seed: number): ChangePlan {
  const all: Target[] = [];
  for (const [mailbox, dir] of mailboxDirs(master)) for (const uid of readUidlist(dir).keys()) all.push({ mailbox, uid });
  all.sort((a, b) => (a.mailbox === b.mailbox ? a.uid - b.uid : a.mailbox < b.mailbox ? -1 : 1));
  const r = rng(seed);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  const perSide = Math.max(5, Math.round(all.length * fraction));
  const nAdd = Math.round(perSide * 0.4), nFlag = Math.round(perSide * 0.4), nExp = perSide - nAdd - nFlag;
  const mail = cleanCorpus();
  let next = 0;
  const take = (n: number) => all.slice(next, (next += n));
  const side = (s: 'src' | 'dst'): SidePlan => ({
    side: s,
    expunge: take(nExp),
    flag: take(nFlag).map((t, i) => ({ ...t, seen: i % 2 === 0 })),
    // New mail lands where mail already is, so big folders get more of it.
    add: take(nAdd).map((t, i) => ({ mailbox: t.mailbox, body: variant(mail[Math.floor(r() * mail.length)]!, i, `new-${s}-`) })),
  });
  return { src: side('src'), dst: side('dst'), perSide };
}

let delivered = 0;

/**
 * Applies one side's plan to the Maildir at `root`; returns what it did to that mailbox tree's
 * tally (see maildir-files.ts), so the expected result of the sync can be computed.
 */
export function applyChanges(root: string, plan: SidePlan): Tally {
  const delta: Tally = {};
  const dirs = mailboxDirs(root);
  const cache = new Map<string, { byUid: Map<number, string>; files: Map<string, ReturnType<typeof listMessages>[number]>; kw: Map<string, string> }>();
  const mailbox = (name: string) => {
    let c = cache.get(name);
    if (!c) {
      const dir = dirs.get(name)!;
      c = { byUid: readUidlist(dir), files: new Map(listMessages(dir).map((m) => [m.basename, m])), kw: readKeywordMap(dir) };
      cache.set(name, c);
    }
    return c;
  };
  const find = (t: Target) => {
    const c = mailbox(t.mailbox);
    const base = c.byUid.get(t.uid);
    const file = base === undefined ? undefined : c.files.get(base);
    if (!file) throw new Error(`${root}: ${t.mailbox} UID ${t.uid} has no file (${base ?? 'not in dovecot-uidlist'})`);
    return { file, kw: c.kw, dir: dirs.get(t.mailbox)! };
  };
  for (const t of plan.expunge) {
    const { file, kw, dir } = find(t);
    unlinkSync(join(dir, file.sub, file.file));
    addToTally(delta, t.mailbox, 'messages', -1);
    for (const f of flagNames(file.letters, kw)) addToTally(delta, t.mailbox, f, -1);
  }
  for (const t of plan.flag) {
    const { file, dir } = find(t);
    const letters = new Set(file.letters);
    for (const c of t.seen ? ['F', 'S'] : ['F']) {
      addToTally(delta, t.mailbox, c, letters.has(c) ? -1 : 1);
      if (!letters.delete(c)) letters.add(c);
    }
    // Maildir wants the letters in ASCII order; a client reading new/ mail moves it to cur/.
    renameSync(join(dir, file.sub, file.file), join(dir, 'cur', `${file.basename}:2,${[...letters].sort().join('')}`));
  }
  const now = Date.now();
  for (const a of plan.add) {
    const dir = dirs.get(a.mailbox)!;
    // The side is in the host part: a Maildir GUID is the base name, so the two sides' new mail must differ.
    const name = `${Math.floor(now / 1000)}.M${(now % 1000) * 1000}P${process.pid}Q${++delivered}.bench-${plan.side},S=${a.body.length}`;
    writeFileSync(join(dir, 'tmp', name), a.body);
    renameSync(join(dir, 'tmp', name), join(dir, 'new', name));
    addToTally(delta, a.mailbox, 'messages', 1);
  }
  return delta;
}

/** base + each delta, as a new tally. */
export function applyDelta(base: Tally, ...deltas: Tally[]): Tally {
  const out: Tally = JSON.parse(JSON.stringify(base)) as Tally;
  for (const d of deltas) for (const [mb, counts] of Object.entries(d)) for (const [k, n] of Object.entries(counts)) addToTally(out, mb, k, n);
  return out;
}
