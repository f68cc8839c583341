/**
 * A strict reader of the Prometheus text exposition format, for the replicator's /metrics: the
 * test shares no code with prom-client, which writes it.
 */
import { strict as assert } from 'node:assert';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

/**
 * The Prometheus text format (version 0.0.4), strictly: every line a HELP, a TYPE or a sample
 * of the family declared just before (histograms' _bucket, _sum and _count), labels quoted and
 * escaped, values numbers, the text ending with a newline. Throws naming the line otherwise.
 */
export function parsePrometheus(text: string): Map<string, Family> {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map<string, Family>();
  let current: Family | undefined;
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === '') return;
    let m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line);
    if (m) {
      assert.ok(!families.has(m[1]!), `${where}: family declared twice`);
      current = { name: m[1]!, type: 'untyped', help: m[2]!, samples: [] };
      families.set(current.name, current);
      return;
    }
    m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (m) {
      assert.equal(m[1], current?.name, `${where}: TYPE for another family than the HELP before it`);
      current!.type = m[2]!;
      return;
    }
    assert.ok(!line.startsWith('#'), `${where}: a comment that is neither HELP nor TYPE`);
    m = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`).exec(line);
    assert.ok(m, `${where}: not a sample`);
    const [, name, labelText, valueText] = m;
    assert.ok(current, `${where}: a sample before any family`);
    const suffixes = current.type === 'histogram' ? ['_bucket', '_sum', '_count'] : current.type === 'summary' ? ['', '_sum', '_count'] : [''];
    assert.ok(suffixes.some((s) => name === current!.name + s), `${where}: sample of another family than ${current.name}`);
    const labels: Record<string, string> = {};
    if (labelText !== undefined && labelText !== '') {
      const re = new RegExp(`(${NAME})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"(,|$)`, 'y');
      let at = 0;
      while (at < labelText.length) {
        re.lastIndex = at;
        const l = re.exec(labelText);
        assert.ok(l, `${where}: bad label at ${labelText.slice(at)}`);
        assert.ok(!(l[1]! in labels), `${where}: label ${l[1]} twice`);
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
        at = re.lastIndex;
      }
    }
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : valueText === 'NaN' ? NaN : Number(valueText);
    assert.ok(/^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/.test(valueText!), `${where}: value is not a number`);
    current.samples.push({ name: name!, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

/** Each series' buckets rise with `le` and end at +Inf with the series' count. */
function checkHistogram(f: Family): void {
  const key = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
  const series = new Map<string, Sample[]>();
  for (const x of f.samples.filter((x) => x.name === `${f.name}_bucket`)) {
    assert.ok(x.labels.le !== undefined, `${f.name}: a bucket without le`);
    series.set(key(x.labels), [...(series.get(key(x.labels)) ?? []), x]);
  }
  for (const [k, buckets] of series) {
    const bounds = buckets.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le)));
    assert.ok(bounds.every((b, i) => i === 0 || b > bounds[i - 1]!), `${f.name}${k}: le not rising`);
    assert.ok(buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1]!.value), `${f.name}${k}: bucket counts not rising`);
    assert.equal(bounds.at(-1), Infinity, `${f.name}${k}: no +Inf bucket`);
    const count = f.samples.find((x) => x.name === `${f.name}_count` && key(x.labels) === k);
    assert.equal(count?.value, buckets.at(-1)!.value, `${f.name}${k}: the +Inf bucket is the count`);
  }
}
