/**
 * The table of cases 4-7: one row per case and reference tool, with CPU seconds next to wall
 * seconds, because here the two differ for reasons that matter (doveadm's mbox writer sleeps
 * for mtime changes; an IMAP client waits on the server, whose CPU is in neither column).
 */
import { cpus } from 'node:os';
import { CROSS_CASES, type CrossSample, type CrossSeriesResult, type CrossTool } from './cross-cases.js';
import type { Dataset } from './data.js';
import { beyondNodeStart, formatBeyondNodeStart, median, type BeyondNodeStart } from './measure.js';
import type { ToolSummary } from './report.js';

/** A reference tool's summary, with the median CPU seconds that matter in these cases. */
export interface CrossToolSummary extends ToolSummary {
  medianCpuSeconds: number | null;
}

export interface CrossRow extends Partial<BeyondNodeStart> { id: string; title: string; reference: CrossTool; mailferry?: CrossToolSummary; ref?: CrossToolSummary; ratio: number | null; cpuRatio: number | null }

export interface CrossSeriesSummary {
  dataset: string; messages: number; folders: number; repetitions: number; rows: CrossRow[]; notes: string[];
  otherCpu?: { seconds: number; wallSeconds: number };
}

function summarize(samples: CrossSample[], tool: CrossTool, caseId: string, messages: number): CrossToolSummary | undefined {
  const mine = samples.filter((s) => s.tool === tool && s.caseId === caseId);
  if (mine.length === 0) return undefined;
  const good = mine.filter((s) => s.problems.length === 0);
  const seconds = good.map((s) => s.seconds);
  const med = seconds.length ? median(seconds) : null;
  const cpu = good.map((s) => s.cpuSeconds).filter((x): x is number => x !== undefined);
  const rss = mine.map((s) => s.rssKb ?? 0).filter((x) => x > 0);
  return {
    medianSeconds: med, seconds, medianCpuSeconds: cpu.length ? median(cpu) : null, peakRssKb: rss.length ? Math.max(...rss) : null,
    messagesPerSecond: med ? Math.round(messages / med) : null, runs: mine.length, correct: good.length,
    ranAgain: mine.filter((s) => s.attempts > 1).length, problems: [...new Set(mine.flatMap((s) => s.problems))].slice(0, 5),
  };
}

export function summarizeCross(ds: Dataset, reps: number, r: CrossSeriesResult): CrossSeriesSummary {
  const rows: CrossRow[] = [];
  for (const c of CROSS_CASES) {
    const mf = summarize(r.samples, 'mailferry', c.id, r.messages);
    for (const ref of c.references) {
      const rf = summarize(r.samples, ref, c.id, r.messages);
      const ratio = mf?.medianSeconds && rf?.medianSeconds ? mf.medianSeconds / rf.medianSeconds : null;
      const cpuRatio = mf?.medianCpuSeconds && rf?.medianCpuSeconds ? mf.medianCpuSeconds / rf.medianCpuSeconds : null;
      const good = r.samples.filter((x) => x.tool === 'mailferry' && x.caseId === c.id && x.problems.length === 0);
      const node = c.id === '7' ? beyondNodeStart(good.map((x) => x.seconds), good.flatMap((x) => (x.nodeStartSeconds === undefined ? [] : [x.nodeStartSeconds]))) : {};
      rows.push({ id: c.id, title: c.title, reference: ref, mailferry: mf, ref: rf, ratio, cpuRatio, ...node });
    }
  }
  return { dataset: ds.name, messages: r.messages, folders: r.folders, repetitions: reps, rows, notes: r.notes };
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const secs = (t?: CrossToolSummary, missing = 'n/a') => (t?.medianSeconds == null ? (t ? 'FAILED' : missing) : t.medianSeconds.toFixed(3));
const cpu = (t?: CrossToolSummary) => (t?.medianCpuSeconds == null ? '-' : t.medianCpuSeconds.toFixed(2));
const mb = (t?: CrossToolSummary) => (t?.peakRssKb == null ? '-' : (t.peakRssKb / 1024).toFixed(1));
const rate = (t?: CrossToolSummary) => (t?.messagesPerSecond == null ? '-' : String(t.messagesPerSecond));
const ok = (t?: CrossToolSummary) => (t ? `${t.correct}/${t.runs}` : '-');
const x = (v: number | null) => (v == null ? '-' : `${v.toFixed(2)}x`);

export function formatCross(s: CrossSeriesSummary): string {
  const lines: string[] = [];
  lines.push(`== ${s.dataset}, cases 4-7 (${s.messages} messages, ${s.folders} mailboxes) | mail_fsync=never / FSync no on ALL tools, IMAP server mail_fsync=never | ${s.repetitions} repetitions, median wall seconds ==`);
  if (s.otherCpu && s.otherCpu.seconds > 0.05 * s.otherCpu.wallSeconds) {
    lines.push(`   WARNING: other processes used ${s.otherCpu.seconds} CPU-s during this ${s.otherCpu.wallSeconds} s series (${cpus().length} CPUs): times are noisy`);
  }
  lines.push([pad('case', 44), pad('reference', 9), lpad('mailferry', 10), lpad('ref', 9), lpad('mf/ref', 7), lpad('mf CPU s', 9), lpad('ref CPU', 8), lpad('CPU mf/ref', 10),
    lpad('mf RSS MB', 10), lpad('ref RSS', 8), lpad('mf msg/s', 9), lpad('ref msg/s', 9), lpad('correct mf', 11), lpad('ref', 5)].join(' '));
  for (const r of s.rows) {
    lines.push([pad(`${r.id.padEnd(3)}${r.title}`, 44), pad(r.reference, 9), lpad(secs(r.mailferry), 10), lpad(secs(r.ref, 'missing'), 9), lpad(x(r.ratio), 7),
      lpad(cpu(r.mailferry), 9), lpad(cpu(r.ref), 8), lpad(x(r.cpuRatio), 10), lpad(mb(r.mailferry), 10), lpad(mb(r.ref), 8),
      lpad(rate(r.mailferry), 9), lpad(rate(r.ref), 9), lpad(ok(r.mailferry), 11), lpad(ok(r.ref), 5)].join(' '));
  }
  lines.push(...formatBeyondNodeStart(s.rows.filter((r, i) => s.rows.findIndex((o) => o.id === r.id) === i)));
  const seen = new Set<string>();
  for (const r of s.rows) {
    for (const [name, t] of [['mailferry', r.mailferry], [r.reference, r.ref]] as const) {
      if (!t || seen.has(`${r.id} ${name}`)) continue;
      seen.add(`${r.id} ${name}`);
      if (t.ranAgain) lines.push(`   case ${r.id} ${name} exited 2 ("run again") in ${t.ranAgain}/${t.runs} repetitions and was run again; its time is the sum of the runs`);
      if (t.problems.length) lines.push(`   case ${r.id} ${name} WRONG in ${t.runs - t.correct} run(s): ${t.problems.join(' | ').slice(0, 400)}`);
    }
  }
  for (const n of s.notes) lines.push(`   note: ${n}`);
  return lines.join('\n');
}
