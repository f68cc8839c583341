/**
 * Cases 4-7, mailferry between two kinds of store, against the reference that does the same
 * job: doveadm for Maildir -> mbox, mbsync (and doveadm's imapc) for IMAP. One series = one
 * data set × N repetitions; in each repetition every case runs every tool once, in an order that
 * rotates with the repetition, each on its own copies and its own IMAP accounts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dovecot } from '../test/support/dovecot.js';
import type { Dataset } from './data.js';
import { mboxableMaster, partialMaster } from './derived-masters.js';
import { migrate, twoWay, upload, type Expected, type ImapPair } from './imap-cases.js';
import { seedAccount, startImapServer, type ImapServer } from './imap-server.js';
import { messageCounts, systemFlagCounts } from './mailbox-counts.js';
import { tally } from './maildir-files.js';
import { doveadmToMbox, mailferryToMbox, mboxCaseSource, type CaseRun } from './mbox-cases.js';
import { flushDisks, sleep, type Timed, nodeStartSeconds } from './measure.js';
import { DATA_DIR, warmCache, workCopy } from './workspace.js';

export type CrossTool = 'mailferry' | 'doveadm' | 'mbsync';

export interface CrossCaseDef { id: '4' | '5' | '6' | '7'; title: string; references: CrossTool[] }

export const CROSS_CASES: CrossCaseDef[] = [
  { id: '4', title: 'Maildir -> empty mbox root', references: ['doveadm'] },
  { id: '5', title: 'IMAP -> empty Maildir (migration)', references: ['mbsync', 'doveadm'] },
  { id: '6', title: 'Maildir -> empty IMAP account (upload)', references: ['mbsync'] },
  { id: '7', title: 'no-op IMAP <-> Maildir sync (in sync)', references: ['mbsync'] },
];

export interface CrossSample {
  caseId: CrossCaseDef['id'];
  tool: CrossTool;
  rep: number;
  seconds: number;
  cpuSeconds: number | undefined;
  rssKb: number | undefined;
  code: number;
  attempts: number;
  problems: string[];
  /** `node -e 0` timed just before this run (case 7, mailferry only). */
  nodeStartSeconds?: number;
}

export interface CrossSeriesResult {
  samples: CrossSample[];
  messages: number;
  folders: number;
  /** What the series did differently from the plain data set (subset, renamed mailboxes), for the report. */
  notes: string[];
}

/**
 * The quick run's part of the corpus: a third of its mail, with a hierarchy and an mUTF-7 name.
 * Few mailboxes, because doveadm's mbox writer waits about a second per mailbox (see mbox-cases.ts).
 */
export const QUICK_MAILBOXES = ['INBOX', 'Lists.spamassassin-talk', 'Priv&AOk-'];

const OK_CODES: Record<CrossTool, number[]> = { mailferry: [0, 2], doveadm: [0, 2], mbsync: [0] };
/**
 * As in cases.ts: a timed run on a Maildir that was written to starts at least 2.5 s after the
 * write, so the tools may trust its directory mtimes. Only case 7 needs it: cases 4-6 read fresh
 * copies (or IMAP) that every tool scans in full anyway.
 */
const SETTLE_MS = 2500;

export interface CrossOptions {
  ds: Dataset;
  reps: number;
  /** Only these mailboxes of the data set (quick mode). */
  subset?: string[];
  /** The private Dovecot of the doveadm cases (case 4); undefined when doveadm is missing. */
  doveadm?: Dovecot;
  /** Dovecot can be started (the IMAP server of cases 5-7). */
  imapServer: boolean;
  mbsync: boolean;
  log: (s: string) => void;
}

export async function runCrossSeries(o: CrossOptions): Promise<CrossSeriesResult> {
  const series = join(DATA_DIR, 'work', `cross-${o.ds.name}`);
  mkdirSync(series, { recursive: true });
  const notes: string[] = [];
  let master = o.ds.master;
  if (o.subset) {
    master = join(series, 'master');
    partialMaster(o.ds.master, master, o.subset);
  }
  const base = tally(master);
  const messages = Object.values(base).reduce((n, c) => n + (c.messages ?? 0), 0);
  if (o.subset) notes.push(`cases 4-7 use ${o.subset.length} of the ${o.ds.folders.length} mailboxes of ${o.ds.name} (${o.subset.join(', ')}): ${messages} of ${o.ds.messages} messages, to keep --quick short`);
  const mboxMaster = join(series, 'mbox-master');
  const renamed = mboxableMaster(master, mboxMaster);
  if (renamed.length) notes.push(`case 4 converts a copy of the Maildir in which mailboxes that are children of mailboxes become siblings (${renamed.join(', ')}): mbox cannot store mail in a mailbox that has children, and both tools refuse to`);
  const expected: Expected = { withFlags: systemFlagCounts(base), messages: messageCounts(base) };
  const expected4 = messageCounts(tally(mboxMaster));

  const samples: CrossSample[] = [];
  let lastWrite = Date.now();
  const settle = async () => {
    const wait = lastWrite + SETTLE_MS - Date.now();
    if (wait > 0) await sleep(wait);
  };
  /** Runs one timed attempt (again while it exits 2, as cases.ts does), checks it, records it. */
  const timed = async (caseId: CrossCaseDef['id'], tool: CrossTool, rep: number, go: () => Promise<CaseRun>): Promise<boolean> => {
    flushDisks();
    const nodeStart = caseId === '7' && tool === 'mailferry' ? await nodeStartSeconds() : undefined;
    const first = await go();
    const t: Timed = first.timed;
    let attempts = 1;
    while (t.code === 2 && attempts < 3) {
      const again = (await go()).timed;
      attempts++;
      Object.assign(t, { ...again, seconds: t.seconds + again.seconds, cpuSeconds: (t.cpuSeconds ?? 0) + (again.cpuSeconds ?? 0), rssKb: Math.max(t.rssKb ?? 0, again.rssKb ?? 0) || undefined });
    }
    lastWrite = Date.now();
    const problems = OK_CODES[tool].includes(t.code) ? [] : [`exit ${t.code}: ${`${t.stderr}`.trim().split('\n').slice(-2).join(' / ')}`];
    if (problems.length === 0) {
      try { problems.push(...first.check()); } catch (e) { problems.push((e as Error).message.split('\n')[0]!); }
    }
    samples.push({ caseId, tool, rep, seconds: t.seconds, cpuSeconds: t.cpuSeconds, rssKb: t.rssKb, code: t.code, attempts, problems, nodeStartSeconds: nodeStart });
    o.log(`  cross ${o.ds.name} rep ${rep + 1}/${o.reps} case ${caseId} ${tool.padEnd(9)} ${t.seconds.toFixed(3).padStart(8)} s  cpu ${(t.cpuSeconds ?? NaN).toFixed(2).padStart(6)} s` +
      `  ${((t.rssKb ?? 0) / 1024).toFixed(0).padStart(4)} MB${attempts > 1 ? ` (exit 2, ${attempts} runs)` : ''}${problems.length ? `  WRONG: ${problems.join('; ').slice(0, 300)}` : ''}`);
    return problems.length === 0;
  };
  const rotate = <T>(xs: T[], rep: number): T[] => xs.map((_, i) => xs[(i + rep) % xs.length]!);

  const imapTools: CrossTool[] = ['mailferry', ...(o.mbsync ? ['mbsync' as const] : [])];
  const migrators: CrossTool[] = [...imapTools, ...(o.imapServer ? ['doveadm' as const] : [])];
  let server: ImapServer | undefined;
  if (o.imapServer) {
    const users = [...migrators.map((t) => `src-${t}`), ...Array.from({ length: o.reps }, (_, r) => imapTools.map((t) => `up-${t}-r${r}`)).flat()];
    server = await startImapServer(join(series, 'accounts'), users);
    for (const t of migrators) await seedAccount(server, `src-${t}`, master);
    o.log(`  cross ${o.ds.name}: Dovecot IMAP on 127.0.0.1:${server.port}, accounts ${migrators.map((t) => `src-${t}`).join(', ')} seeded with ${messages} messages`);
    lastWrite = Date.now();
  } else {
    notes.push('cases 5-7 not run: Dovecot (dovecot-imapd) is not installed or did not start');
  }
  if (!o.mbsync) notes.push('mbsync is missing: no mbsync columns');

  try {
    for (let rep = 0; rep < o.reps; rep++) {
      const r = join(series, `r${rep}`);
      // Case 4
      const tools4 = rotate<CrossTool>(['mailferry', ...(o.doveadm ? ['doveadm' as const] : [])], rep);
      const src4 = new Map<CrossTool, string>();
      for (const t of tools4) src4.set(t, await mboxCaseSource(mboxMaster, join(r, `mbox-${t}`), t === 'doveadm'));
      for (const t of tools4) {
        warmCache(mboxMaster);
        const dir = join(r, `mbox-${t}`);
        await timed('4', t, rep, () => (t === 'doveadm' ? doveadmToMbox(o.doveadm!, src4.get(t)!, dir, expected4) : mailferryToMbox(src4.get(t)!, dir, expected4)));
      }
      if (!server) continue;
      const s = server;
      // Case 5
      const pairs = new Map<CrossTool, ImapPair>();
      const broken = new Set<CrossTool>();
      for (const t of rotate(migrators, rep)) {
        const pair = { dir: join(r, `imap-${t}`), account: `src-${t}` };
        mkdirSync(pair.dir, { recursive: true });
        pairs.set(t, pair);
      }
      for (const t of rotate(migrators, rep)) {
        if (!(await timed('5', t, rep, () => migrate(s, t as 'mailferry' | 'mbsync' | 'doveadm', pairs.get(t)!, expected)))) broken.add(t);
      }
      // Case 6
      const up = new Map<CrossTool, { src: string; pair: ImapPair }>();
      for (const t of rotate(imapTools, rep)) {
        const dir = join(r, `up-${t}`);
        mkdirSync(dir, { recursive: true });
        workCopy(master, join(dir, 'src'));
        up.set(t, { src: join(dir, 'src'), pair: { dir, account: `up-${t}-r${rep}` } });
      }
      for (const t of rotate(imapTools, rep)) {
        warmCache(master);
        const u = up.get(t)!;
        await timed('6', t, rep, () => upload(s, t as 'mailferry' | 'mbsync', u.src, u.pair, expected));
      }
      // Case 7: one untimed run brings each pair in sync (the first two-way run after a one-way
      // migration may still write state), then the timed run must find nothing to do.
      const tools7 = rotate(imapTools, rep).filter((t) => !broken.has(t));
      for (const t of tools7) {
        let u = await twoWay(s, t as 'mailferry' | 'mbsync', pairs.get(t)!, expected);
        for (let n = 1; u.timed.code === 2 && n < 3; n++) u = await twoWay(s, t as 'mailferry' | 'mbsync', pairs.get(t)!, expected);
        if (!OK_CODES[t].includes(u.timed.code)) o.log(`  cross ${o.ds.name} rep ${rep + 1} case 7 ${t}: the untimed first sync exited ${u.timed.code}: ${u.timed.stderr.trim().slice(-200)}`);
      }
      lastWrite = Date.now();
      await settle();
      for (const t of tools7) await timed('7', t, rep, () => twoWay(s, t as 'mailferry' | 'mbsync', pairs.get(t)!, expected));
    }
  } finally {
    await server?.dovecot.stop();
  }
  writeFileSync(join(series, 'samples.json'), JSON.stringify(samples, null, 1));
  return { samples, messages, folders: Object.keys(base).length, notes };
}
