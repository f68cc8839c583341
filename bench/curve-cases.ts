/**
 * The cost curve: a two-way sync of the 100k account after 10, 100, 1,000 and 10,000 changes on
 * each side (new mail, flag changes and expunges, as case 3 makes them: changes.ts), by mailferry
 * and by doveadm. An incremental run should cost in proportion to the change, not to the account.
 *
 * Each tool first makes its own in-sync pair once (a backup of a copy of the master, then a sync
 * that records the pair state); every point then gets fresh copies of that pair (workspace.ts:
 * message files are hard links, the rest real copies, the tool's own index among them), so no
 * point starts from another point's changes, and nothing is deleted while the curve runs
 * (dovecot-anchors.md: on this ext4, creating files is several times slower for minutes after a
 * deletion). Every point's result is checked as the other cases check theirs (check.ts).
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { grantDovecotAccess } from '../test/support/dovecot.js';
import { applyChanges, applyDelta, planChanges } from './changes.js';
import { checkPair } from './check.js';
import type { Dataset } from './data.js';
import { tally } from './maildir-files.js';
import { flushDisks, sleep, type Timed } from './measure.js';
import type { PairContext, Tool } from './tools.js';
import { DATA_DIR, retireWork, warmCache, workCopy } from './workspace.js';

export const CURVE_POINTS = [10, 100, 1_000, 10_000];

export interface CurveRun {
  seconds: number;
  cpuSeconds: number | null;
  rssMb: number | null;
  /** Runs it took: more than 1 when the tool asked to be run again (exit 2). */
  attempts: number;
  correct: boolean;
  problems: string[];
}

export interface CurvePoint { changesPerSide: number; mailferry?: CurveRun; doveadm?: CurveRun; ratio: number | null }

export interface CurveSummary {
  data: string;
  messages: number;
  points: CurvePoint[];
  /** What making each tool's in-sync pair took (backup + first sync), for the log; not a point. */
  prepareSeconds: Record<string, number>;
  allCorrect: boolean;
  otherCpu?: { seconds: number; wallSeconds: number };
}

/** Mailferry and Dovecot both trust a directory's mtime only once it is a little old (cases.ts). */
const SETTLE_MS = 2500;

async function runUntilDone(tool: Tool, op: 'backup' | 'sync', src: string, dst: string, ctx: PairContext): Promise<Timed & { attempts: number }> {
  const t = await tool.run(op, src, dst, 'never', ctx);
  let attempts = 1;
  while (t.code === 2 && attempts < 3) {
    const again = await tool.run(op, src, dst, 'never', ctx);
    attempts++;
    Object.assign(t, {
      ...again, seconds: t.seconds + again.seconds, rssKb: Math.max(t.rssKb ?? 0, again.rssKb ?? 0) || undefined,
      cpuSeconds: t.cpuSeconds !== undefined && again.cpuSeconds !== undefined ? t.cpuSeconds + again.cpuSeconds : undefined,
    });
  }
  return { ...t, attempts };
}

async function ownerOf(dir: string, tool: Tool): Promise<{ uid: number; gid: number } | undefined> {
  if (tool.dropsToNobody) await grantDovecotAccess(dir);
  const st = statSync(dir);
  return process.getuid?.() === 0 ? { uid: st.uid, gid: st.gid } : undefined;
}

export async function runCurve(opts: { ds: Dataset; tools: Tool[]; points?: number[]; log: (s: string) => void }): Promise<CurveSummary> {
  const { ds, tools, log } = opts;
  const points = opts.points ?? CURVE_POINTS;
  const base = tally(ds.master);
  // A directory of its own, not under work/: the curve runs for minutes, and another run of the
  // bench that starts or ends meanwhile moves work/ to the trash (workspace.ts).
  const work = join(DATA_DIR, 'work-curve');
  if (existsSync(work)) log(`  curve: bench/data/work-curve/ left by an earlier run: ${retireWork(work, 'quick')}`);
  const prepareSeconds: Record<string, number> = {};
  const pairs = new Map<Tool['id'], { src: string; dst: string; ctx: PairContext }>();
  for (const tool of tools) {
    const dir = join(work, tool.id, 'pair');
    mkdirSync(dir, { recursive: true });
    const owner = await ownerOf(dir, tool);
    const pair = { src: join(dir, 'src'), dst: join(dir, 'dst'), ctx: {} as PairContext };
    workCopy(ds.master, pair.src, owner);
    warmCache(pair.src);
    const b = await runUntilDone(tool, 'backup', pair.src, pair.dst, pair.ctx);
    await sleep(SETTLE_MS);
    const s = b.code === 0 ? await runUntilDone(tool, 'sync', pair.src, pair.dst, pair.ctx) : b;
    if (s.code !== 0) throw new Error(`curve: ${tool.id} could not make its in-sync pair (exit ${s.code}): ${s.stderr.trim().split('\n').slice(-2).join(' / ')}`);
    prepareSeconds[tool.id] = +(b.seconds + s.seconds).toFixed(2);
    log(`  curve: ${tool.id} in-sync pair made in ${prepareSeconds[tool.id]} s`);
    pairs.set(tool.id, pair);
  }

  // Every point's pair is copied, and synced once untimed on its own, before any point is timed:
  // the copy has new directories (new inodes and mtimes), which either tool would otherwise take
  // for a changed mailbox and read whole, as no real incremental run does. Then the changes, then
  // the timed syncs.
  type Run = { src: string; dst: string; dir: string; ctx: PairContext; expected?: ReturnType<typeof tally> };
  const runs = new Map<string, Run>();
  for (const n of points) {
    for (const tool of tools) {
      const pair = pairs.get(tool.id)!;
      const dir = join(work, tool.id, `p${n}`);
      mkdirSync(dir, { recursive: true });
      const owner = await ownerOf(dir, tool);
      const r: Run = { src: join(dir, 'src'), dst: join(dir, 'dst'), dir, ctx: { ...pair.ctx } };
      workCopy(pair.src, r.src, owner);
      workCopy(pair.dst, r.dst, owner);
      runs.set(`${tool.id} ${n}`, r);
    }
  }
  await sleep(SETTLE_MS);
  for (const n of points) {
    for (const tool of tools) {
      const r = runs.get(`${tool.id} ${n}`)!;
      const t = await runUntilDone(tool, 'sync', r.src, r.dst, r.ctx);
      if (t.code !== 0) throw new Error(`curve: ${tool.id}'s untimed sync of its copied pair failed (exit ${t.code}): ${t.stderr.trim().split('\n').slice(-2).join(' / ')}`);
    }
  }
  const plans = new Map(points.map((n) => [n, planChanges(ds.master, n / ds.messages, 11)]));
  for (const n of points) {
    for (const tool of tools) {
      const r = runs.get(`${tool.id} ${n}`)!;
      r.expected = applyDelta(base, applyChanges(r.src, plans.get(n)!.src), applyChanges(r.dst, plans.get(n)!.dst));
    }
  }
  await sleep(SETTLE_MS);

  const out: CurvePoint[] = [];
  for (const n of points) {
    const point: CurvePoint = { changesPerSide: plans.get(n)!.perSide, ratio: null };
    for (const tool of tools) {
      const { src, dst, dir, ctx, expected } = runs.get(`${tool.id} ${n}`)!;
      flushDisks();
      const t = await runUntilDone(tool, 'sync', src, dst, ctx);
      const problems = tool.okCodes.includes(t.code) ? [] : [`exit ${t.code}: ${t.stderr.trim().split('\n').slice(-2).join(' / ')}`];
      if (problems.length === 0) problems.push(...checkPair(src, dst, expected!, [join(dir, 'check-index-src'), join(dir, 'check-index-dst')]));
      const run: CurveRun = {
        seconds: +t.seconds.toFixed(3), cpuSeconds: t.cpuSeconds === undefined ? null : +t.cpuSeconds.toFixed(2),
        rssMb: t.rssKb === undefined ? null : Math.round(t.rssKb / 1024), attempts: t.attempts, correct: problems.length === 0, problems,
      };
      point[tool.id] = run;
      log(`  curve ${String(n).padStart(6)} changes/side ${tool.id.padEnd(9)} ${t.seconds.toFixed(3).padStart(8)} s  CPU ${run.cpuSeconds ?? '-'} s  ${run.rssMb ?? '-'} MB` +
        `${t.attempts > 1 ? ` (exit 2, ${t.attempts} runs)` : ''}${problems.length ? `  WRONG: ${problems.join('; ').slice(0, 300)}` : ''}`);
    }
    if (point.mailferry?.correct && point.doveadm?.correct) point.ratio = +(point.mailferry.seconds / point.doveadm.seconds).toFixed(2);
    out.push(point);
  }
  const allCorrect = out.every((p) => [p.mailferry, p.doveadm].every((r) => r === undefined || r.correct));
  // A wrong point's copies stay for inspection.
  if (allCorrect) log(`  curve copies: ${retireWork(work, 'quick')}`);
  return { data: ds.name, messages: ds.messages, points: out, prepareSeconds, allCorrect };
}

export function formatCurve(s: CurveSummary): string {
  const cell = (r: CurveRun | undefined) =>
    r === undefined ? '-' : r.correct ? `${r.seconds.toFixed(2)} s, ${r.cpuSeconds?.toFixed(2) ?? '-'} CPU s, ${r.rssMb ?? '-'} MB${r.attempts > 1 ? ` (${r.attempts} runs)` : ''}` : 'WRONG';
  const lines = [
    `### Cost curve: sync of the ${s.messages.toLocaleString('en')}-message account after N changes on each side (mail_fsync=never, one run per point)`,
    '',
    '| changes per side | mailferry (wall, CPU, peak RSS) | doveadm (wall, CPU, peak RSS) | ratio |',
    '|---:|---|---|---:|',
    ...s.points.map((p) => `| ${p.changesPerSide.toLocaleString('en')} | ${cell(p.mailferry)} | ${cell(p.doveadm)} | ${p.ratio ?? '-'} |`),
  ];
  return lines.join('\n');
}

export const CURVE_COMMANDS = {
  mailferry: 'node dist/cli/main.js -o mail_fsync=never sync maildir:SRC maildir:DST, on fresh copies of a pair it backed up and synced once',
  doveadm: 'doveadm -c CONF -o mail_location=maildir:SRC -o mail_fsync=never sync -s STATE -u alice maildir:DST, on fresh copies of a pair it backed up and synced once, STATE from that sync',
};
