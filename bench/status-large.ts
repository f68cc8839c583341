/**
 * Measures `mailferry mailbox status` on one large Maildir (default 100,000 messages):
 * the first status (full scan, index built), a status after 100 external flag changes
 * (rescan), and a status with an up-to-date index (no scan). Usage:
 *   node --import tsx bench/status-large.ts [COUNT] [DIR]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const count = Number(process.argv[2] ?? 100_000);
const root = process.argv[3] ?? join(tmpdir(), `mailferry-status-${count}`);
const cli = join(import.meta.dirname, '../dist/cli/main.js');

function build(): void {
  rmSync(root, { recursive: true, force: true });
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(root, d), { recursive: true });
  const base = 1_600_000_000;
  for (let i = 0; i < count; i++) {
    const body = `Subject: message ${i}\nMessage-ID: <m${i}@bench>\n\nbody ${i}\n`;
    const name = `${base + i}.M${i}P1.bench,S=${body.length},W=${body.length + 4}:2,${i % 2 ? 'S' : ''}`;
    writeFileSync(join(root, 'cur', name), body);
  }
}

function age(): void {
  // The mtime fast path ignores directories changed in the last two seconds.
  const old = new Date(Date.now() - 10_000);
  for (const p of ['cur', 'new', 'dovecot-uidlist']) utimesSync(join(root, p), old, old);
}

function timed(label: string): number {
  const start = process.hrtime.bigint();
  const out = execFileSync(process.execPath, [cli, 'mailbox', 'status', `maildir:${root}`, 'INBOX'], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  console.log(`${label.padEnd(42)} ${ms.toFixed(0).padStart(6)} ms   ${out.trim()}`);
  return ms;
}

function nodeStartup(): number {
  const start = process.hrtime.bigint();
  execFileSync(process.execPath, ['-e', '0']);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

build();
console.log(`${count} messages in ${root}`);
timed('first status (full scan, builds index)');
age();
// Ageing rewrites the mtimes, so this one rescans (finding nothing) and records them.
timed('status, rescan finding nothing');
const files = readdirSync(join(root, 'cur')).slice(0, 100);
for (const f of files) renameSync(join(root, 'cur', f), join(root, 'cur', f.replace(/:2,.*$/, ':2,F')));
age();
timed('status after 100 external flag changes');
age();
timed('status, rescan finding nothing');
const runs = [0, 1, 2, 3, 4].map(() => timed('status, index up to date'));
runs.sort((a, b) => a - b);
console.log(`median up-to-date status: ${runs[2]!.toFixed(0)} ms (node startup alone: ${nodeStartup().toFixed(0)} ms)`);
