/**
 * Case 10's series in a process of its own, which bench/server-cases.ts starts in a network
 * namespace of its own (unshare -n) so that the loopback carries the series' bytes alone.
 * Usage: node --import tsx bench/server-series-main.ts --data corpus --reps N --out FILE [--no-doveadm]
 */
import { writeFileSync } from 'node:fs';
import { dataset, type Dataset } from './data.js';
import { runServerSeries } from './server-cases.js';

const args = process.argv.slice(2);
const valueOf = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
const data = valueOf('--data') as Dataset['name'] | undefined;
const reps = Number(valueOf('--reps'));
const out = valueOf('--out');
if ((data !== 'corpus' && data !== 'big') || !(reps >= 1) || !out) {
  console.error('usage: node --import tsx bench/server-series-main.ts --data corpus|big --reps N --out FILE [--no-doveadm]');
  process.exit(64);
}
const log = (s: string) => process.stderr.write(`${s}\n`);
const ds = await dataset(data, log);
const result = await runServerSeries({ ds, reps, doveadm: !args.includes('--no-doveadm'), log });
writeFileSync(out, JSON.stringify(result));
