/**
 * Turning samples into the printed table and the JSON record.
 *
 * msg/s is always the account's message count divided by the median time: for a backup that is
 * copy throughput, for the incremental cases it is how fast an account of that size is kept in
 * sync (the changes themselves are counted in the case title).
 */
import { cpus } from 'node:os';
import { CASES, type Sample } from './cases.js';
import type { Dataset } from './data.js';
import { beyondNodeStart, formatBeyondNodeStart, median, type BeyondNodeStart } from './measure.js';
import type { Fsync, Tool } from './tools.js';

export interface ToolSummary {
  medianSeconds: number | null;
  seconds: number[];
  /** Highest peak RSS over the repetitions, in KiB. */
  peakRssKb: number | null;
  messagesPerSecond: number | null;
  runs: number;
  correct: number;
  /** Repetitions in which the tool exited 2 and was run again (the time is the sum). */
  ranAgain: number;
  problems: string[];
}

export interface CaseSummary extends Partial<BeyondNodeStart> { id: string; title: string; reference: string; mailferry?: ToolSummary; doveadm?: ToolSummary; ratio: number | null }

export interface SeriesSummary {
  dataset: string; messages: number; bytes: number; folders: number; fsync: Fsync; repetitions: number;
  changesPerSide: number; cases: CaseSummary[];
  /** CPU time other processes used while the series ran (see ForeignCpu). */
  otherCpu?: { seconds: number; wallSeconds: number };
}

function summarize(samples: Sample[], tool: Tool['id'], caseId: string, messages: number): ToolSummary | undefined {
  const mine = samples.filter((s) => s.tool === tool && s.caseId === caseId);
  if (mine.length === 0) return undefined;
  const good = mine.filter((s) => s.problems.length === 0);
  // Only correct runs count for time: a wrong run's speed means nothing.
  const seconds = good.map((s) => s.seconds);
  const med = seconds.length ? median(seconds) : null;
  const rss = mine.map((s) => s.rssKb ?? 0).filter((x) => x > 0);
  return {
    medianSeconds: med, seconds, peakRssKb: rss.length ? Math.max(...rss) : null,
    messagesPerSecond: med ? Math.round(messages / med) : null, runs: mine.length, correct: good.length,
    ranAgain: mine.filter((s) => s.attempts > 1).length,
    problems: [...new Set(mine.flatMap((s) => s.problems))].slice(0, 5),
  };
}

export function summarizeSeries(ds: Dataset, fsync: Fsync, reps: number, samples: Sample[], changesPerSide: number): SeriesSummary {
  return {
    dataset: ds.name, messages: ds.messages, bytes: ds.bytes, folders: ds.folders.length, fsync, repetitions: reps, changesPerSide,
    cases: CASES.map((c) => {
      const mf = summarize(samples, 'mailferry', c.id, ds.messages);
      const dv = summarize(samples, 'doveadm', c.id, ds.messages);
      const ratio = mf?.medianSeconds && dv?.medianSeconds ? mf.medianSeconds / dv.medianSeconds : null;
      // Node's start-up from the same repetitions as the runs that count (correct ones).
      const good = samples.filter((x) => x.tool === 'mailferry' && x.caseId === c.id && x.problems.length === 0);
      const node = c.noop ? beyondNodeStart(good.map((x) => x.seconds), good.flatMap((x) => (x.nodeStartSeconds === undefined ? [] : [x.nodeStartSeconds]))) : {};
      return { id: c.id, title: c.id === '3' ? `sync after 1% changes on each side (${changesPerSide}+${changesPerSide})` : c.title, reference: c.reference, mailferry: mf, doveadm: dv, ratio, ...node };
    }),
  };
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const secs = (t?: ToolSummary) => (t?.medianSeconds == null ? (t ? 'FAILED' : 'n/a') : t.medianSeconds.toFixed(3));
const mb = (t?: ToolSummary) => (t?.peakRssKb == null ? '-' : (t.peakRssKb / 1024).toFixed(1));
const rate = (t?: ToolSummary) => (t?.messagesPerSecond == null ? '-' : String(t.messagesPerSecond));
const ok = (t?: ToolSummary) => (t ? `${t.correct}/${t.runs}` : '-');

export function formatSeries(s: SeriesSummary, doveadmMissing: boolean): string {
  const lines: string[] = [];
  const size = `${s.messages} messages, ${(s.bytes / 1e6).toFixed(1)} MB, ${s.folders} folders`;
  lines.push(`== ${s.dataset} (${size}) | mail_fsync=${s.fsync} on BOTH tools | ${s.repetitions} repetitions, median wall seconds ==`);
  const head = [pad('case', 48), lpad('mailferry', 10), lpad('doveadm', 10), lpad('mf/dv', 7), lpad('mf RSS MB', 10), lpad('dv RSS MB', 10), lpad('mf msg/s', 9), lpad('dv msg/s', 9), lpad('correct mf', 11), lpad('dv', 5)];
  // More than 5% of one CPU on average: enough to show in the sub-second cases.
  if (s.otherCpu && s.otherCpu.seconds > 0.05 * s.otherCpu.wallSeconds) {
    lines.push(`   WARNING: other processes used ${s.otherCpu.seconds} CPU-s during this ${s.otherCpu.wallSeconds} s series (${cpus().length} CPUs): times are noisy`);
  }
  lines.push(head.join(' '));
  for (const c of s.cases) {
    const dv = doveadmMissing ? 'missing' : secs(c.doveadm);
    lines.push([
      pad(`${c.id.padEnd(3)}${c.title}`, 48), lpad(secs(c.mailferry), 10), lpad(dv, 10),
      lpad(c.ratio == null ? '-' : `${c.ratio.toFixed(2)}x`, 7), lpad(mb(c.mailferry), 10), lpad(mb(c.doveadm), 10),
      lpad(rate(c.mailferry), 9), lpad(rate(c.doveadm), 9), lpad(ok(c.mailferry), 11), lpad(ok(c.doveadm), 5),
    ].join(' '));
  }
  lines.push(...formatBeyondNodeStart(s.cases));
  for (const c of s.cases) {
    for (const [name, t] of [['mailferry', c.mailferry], ['doveadm', c.doveadm]] as const) {
      if (t && t.ranAgain) lines.push(`   case ${c.id} ${name} exited 2 ("run again") in ${t.ranAgain}/${t.runs} repetitions and was run again; its time is the sum of the runs`);
      if (t && t.problems.length) lines.push(`   case ${c.id} ${name} WRONG in ${t.runs - t.correct} run(s): ${t.problems.join(' | ').slice(0, 400)}`);
    }
  }
  return lines.join('\n');
}
