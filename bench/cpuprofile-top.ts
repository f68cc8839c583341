/**
 * The functions a V8 .cpuprofile (from `node --cpu-prof`) spent its time in: top N by self time
 * and by inclusive time (self plus everything called from it, counted once per stack).
 * Usage: node --import tsx bench/cpuprofile-top.ts FILE.cpuprofile [N] [--filter SUBSTRING]
 */
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const args = process.argv.slice(2);
const file = args[0];
if (!file) {
  console.error('usage: node --import tsx bench/cpuprofile-top.ts FILE.cpuprofile [N] [--filter SUBSTRING]');
  process.exit(64);
}
const n = Number(args[1]) > 0 ? Number(args[1]) : 25;
const filter = args.includes('--filter') ? args[args.indexOf('--filter') + 1] : undefined;
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
// Piped into head: stop quietly when the reader goes away.
process.stdout.on('error', () => process.exit(0));

const byId = new Map(p.nodes.map((x) => [x.id, x]));
const parent = new Map<number, number>();
for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
const label = (x: Node) => {
  const url = x.callFrame.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
  return `${x.callFrame.functionName || '(anonymous)'} ${url ? `${url}:${x.callFrame.lineNumber + 1}` : ''}`.trim();
};

const self = new Map<string, number>();
const incl = new Map<string, number>();
let total = 0;
p.samples.forEach((id, i) => {
  const dt = (p.timeDeltas[i] ?? 0) / 1000;
  total += dt;
  const leaf = byId.get(id)!;
  self.set(label(leaf), (self.get(label(leaf)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur)!);
    if (seen.has(l)) continue;
    seen.add(l);
    incl.set(l, (incl.get(l) ?? 0) + dt);
  }
});

const show = (title: string, m: Map<string, number>) => {
  console.log(`${title} (of ${total.toFixed(0)} ms sampled)`);
  [...m].filter(([k]) => !filter || k.includes(filter)).sort((a, b) => b[1] - a[1]).slice(0, n)
    .forEach(([k, v]) => console.log(`${v.toFixed(0).padStart(8)} ms ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`));
};
show('self time', self);
console.log();
show('inclusive time', incl);
