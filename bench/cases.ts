/**
 * One series = one data set × one mail_fsync setting × N repetitions. Each repetition gives
 * every tool its own fresh copy of the master and an empty destination, then walks the cases
 * in order (each case starts from the pair the previous one left), the tools in lockstep:
 * case 1 tool A, case 1 tool B, case 2a tool A, ... with A and B swapping every repetition, so
 * drift (page cache, writeback, thermal) falls on both alike.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { grantDovecotAccess } from '../test/support/dovecot.js';
import { applyChanges, applyDelta, planChanges, type ChangePlan } from './changes.js';
import { checkPair } from './check.js';
import type { Dataset } from './data.js';
import { tally, type Tally } from './maildir-files.js';
import { flushDisks, nodeStartSeconds, sleep } from './measure.js';
import type { Fsync, Op, PairContext, Tool } from './tools.js';
import { DATA_DIR, warmCache, workCopy } from './workspace.js';

export interface CaseDef { id: string; title: string; op: Op; reference: string; /** Nothing to do: measured against `node -e 0` too. */ noop?: boolean }

export const CASES: CaseDef[] = [
  { id: '1', title: 'backup -> empty Maildir', op: 'backup', reference: 'doveadm backup' },
  { id: '2a', title: 'backup again, nothing changed', op: 'backup', reference: 'doveadm backup' , noop: true },
  { id: '2b', title: 'sync in-sync pair (1st sync after backup)', op: 'sync', reference: 'doveadm sync' , noop: true },
  { id: '2c', title: 'sync in-sync pair again', op: 'sync', reference: 'doveadm sync' , noop: true },
  { id: '3', title: 'sync after 1% changes on each side', op: 'sync', reference: 'doveadm sync' },
];

export interface Sample {
  caseId: string;
  tool: Tool['id'];
  rep: number;
  seconds: number;
  rssKb: number | undefined;
  code: number;
  /** Runs it took: more than 1 when the tool exited 2 ("run again"); seconds is their sum. */
  attempts: number;
  problems: string[];
  /** `node -e 0` timed just before this run (no-op cases of mailferry only). */
  nodeStartSeconds?: number;
}

/**
 * Both tools trust a directory's mtime only once it is a little old (mailferry: 2 s; Dovecot
 * treats a directory changed in the current second as dirty). A periodic sync runs long after
 * the last write, so every timed run starts at least this long after the last write to any copy.
 */
const SETTLE_MS = 2500;

export async function runSeries(
  ds: Dataset, fsync: Fsync, reps: number, tools: Tool[], log: (s: string) => void,
): Promise<{ samples: Sample[]; changesPerSide: number }> {
  const samples: Sample[] = [];
  const base = tally(ds.master);
  const plan: ChangePlan = planChanges(ds.master, 0.01, 7);
  const series = join(DATA_DIR, 'work', `${ds.name}-${fsync}`);
  let lastWrite = Date.now();
  const settle = async () => {
    const wait = lastWrite + SETTLE_MS - Date.now();
    if (wait > 0) await sleep(wait);
  };

  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? tools : [...tools].reverse();
    const dirs = new Map<Tool['id'], { src: string; dst: string; idx: [string, string]; expected: Tally; broken: boolean; ctx: PairContext }>();
    for (const tool of order) {
      const dir = join(series, `r${rep}`, tool.id);
      mkdirSync(dir, { recursive: true });
      // doveadm drops to nobody: its copy, and the directory it creates DST in, must be nobody's.
      if (tool.dropsToNobody) await grantDovecotAccess(dir);
      const st = statSync(dir);
      const owner = process.getuid?.() === 0 ? { uid: st.uid, gid: st.gid } : undefined;
      workCopy(ds.master, join(dir, 'src'), owner);
      dirs.set(tool.id, { src: join(dir, 'src'), dst: join(dir, 'dst'), idx: [join(dir, 'check-index-src'), join(dir, 'check-index-dst')], expected: base, broken: false, ctx: {} });
    }
    lastWrite = Date.now();

    for (const c of CASES) {
      if (c.id === '3') {
        await settle();
        for (const tool of order) {
          const d = dirs.get(tool.id)!;
          if (d.broken) continue;
          d.expected = applyDelta(base, applyChanges(d.src, plan.src), applyChanges(d.dst, plan.dst));
        }
        lastWrite = Date.now();
      }
      await settle();
      for (const tool of order) {
        const d = dirs.get(tool.id)!;
        if (d.broken) {
          samples.push({ caseId: c.id, tool: tool.id, rep, seconds: NaN, rssKb: undefined, code: -1, attempts: 0, problems: ['skipped: an earlier case of this repetition failed'] });
          continue;
        }
        // The VM pages out cold page cache (DAMON): read the source in first, so case 1 reads
        // it from memory for both tools, whichever runs first.
        if (c.id === '1') warmCache(ds.master);
        flushDisks();
        const nodeStart = c.noop && tool.id === 'mailferry' ? await nodeStartSeconds() : undefined;
        const t = await tool.run(c.op, d.src, d.dst, fsync, d.ctx);
        // Exit 2 means "done, but not everything: run again" for both tools (doveadm gives it when
        // its state points into a rotated transaction log, e.g. in case 3 after a big first copy).
        // Running again is what the tool asks for, so the case costs both runs together.
        let attempts = 1;
        while (t.code === 2 && attempts < 3) {
          const again = await tool.run(c.op, d.src, d.dst, fsync, d.ctx);
          attempts++;
          Object.assign(t, { ...again, seconds: t.seconds + again.seconds, rssKb: Math.max(t.rssKb ?? 0, again.rssKb ?? 0) || undefined });
        }
        lastWrite = Date.now();
        const problems = tool.okCodes.includes(t.code) ? [] : [`exit ${t.code}: ${t.stderr.trim().split('\n').slice(-2).join(' / ')}`];
        if (problems.length === 0) problems.push(...checkPair(d.src, d.dst, d.expected, d.idx));
        if (problems.length > 0) d.broken = true;
        const note = attempts > 1 ? ` (exit 2, ${attempts} runs)` : '';
        samples.push({ caseId: c.id, tool: tool.id, rep, seconds: t.seconds, rssKb: t.rssKb, code: t.code, attempts, problems, nodeStartSeconds: nodeStart });
        log(`  ${ds.name} fsync=${fsync} rep ${rep + 1}/${reps} case ${c.id.padEnd(2)} ${tool.id.padEnd(9)} ${t.seconds.toFixed(3).padStart(8)} s` +
          `  ${((t.rssKb ?? 0) / 1024).toFixed(0).padStart(4)} MB${note}${problems.length ? `  WRONG: ${problems.join('; ').slice(0, 300)}` : ''}`);
      }
    }
    // Nothing is deleted until the whole run is over: on this VM's journal-less ext4, creating
    // files is several times slower for minutes after many files were deleted (ext4 skips
    // recently deleted inodes), which would land in the next repetition's case 1.
  }
  return { samples, changesPerSide: plan.perSide };
}
