/**
 * The built CLI (scripts/build.mjs): a local run loads none of the packages only other commands
 * use, the processes forked by file path are built beside it, and an internal error's stack
 * names the sources, not the bundle.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, deliver } from './cli-child.js';

const DIST = join(import.meta.dirname, '../../dist');
const SRC = join(import.meta.dirname, '../../src');

/** Runs the CLI inside a node that then prints what it ran: the CommonJS packages it loaded, and SCRIPT's output. */
function inside(args: string[], script = ''): { code: number | null; stdout: string; stderr: string; packages: string[] } {
  const code = `
    import { createRequire } from 'node:module';
    const require = createRequire(import.meta.url);
    process.argv = [process.argv[0], ${JSON.stringify(CLI)}, ...${JSON.stringify(args)}];
    await import(${JSON.stringify(CLI)});
    ${script}
    const packages = [...new Set(Object.keys(require.cache).map((f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(f)?.[1]).filter(Boolean))];
    process.stdout.write('\\nPACKAGES ' + JSON.stringify(packages) + '\\n');
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  const m = /\nPACKAGES (.*)\n$/.exec(r.stdout);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, packages: m ? (JSON.parse(m[1]!) as string[]) : [] };
}

describe('cli: the built bundle', { timeout: 60_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-bundle-'));
    deliver(join(dir, 'a'), 3, 'bundle');
    deliver(join(dir, 'a', '.Work Stuff'), 1, 'bundle-work');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('a Maildir backup and its no-op rerun load SQLite but not IMAP, PostgreSQL, metrics or the watcher', () => {
    for (let run = 0; run < 2; run++) {
      const r = inside(['-o', 'mail_fsync=never', 'backup', `maildir:${join(dir, 'a')}`, `maildir:${join(dir, 'b')}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.packages.includes('better-sqlite3'), `better-sqlite3 not among ${r.packages.join(', ')}`);
      for (const lazy of ['imapflow', 'pg', 'pg-cursor', 'prom-client', 'chokidar']) assert.ok(!r.packages.includes(lazy), `${lazy} loaded by a Maildir backup`);
    }
    assert.equal(readFileSync(join(dir, 'b', '.Work Stuff', 'dovecot-uidlist'), 'utf8').trim().split('\n').length, 2);
  });

  it('the worker and session processes are built where their runners fork them', () => {
    for (const entry of ['cli/main.js', 'users/user-worker.js', 'server/session-worker.js']) {
      assert.ok(existsSync(join(DIST, entry)), `dist/${entry} missing`);
      assert.ok(existsSync(join(DIST, `${entry}.map`)), `dist/${entry}.map missing`);
    }
    assert.match(readFileSync(CLI, 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });

  it('a stack through the bundle names the source file and line', () => {
    // A frame at the bundle's own main(): mapped, it is src/cli/main.ts at `export async function main(`.
    const lines = readFileSync(CLI, 'utf8').split('\n');
    const at = lines.findIndex((l) => l.startsWith('async function main('));
    assert.ok(at >= 0, 'main() not found in the bundle');
    const want = readFileSync(join(SRC, 'cli/main.ts'), 'utf8').split('\n').findIndex((l) => l.startsWith('export async function main(')) + 1;
    const probe = `
      const site = { getFileName: () => ${JSON.stringify(CLI)}, getLineNumber: () => ${at + 1}, getColumnNumber: () => 16,
        toString: () => 'main (${CLI}:${at + 1}:16)' };
      const other = { getFileName: () => 'node:internal/x', getLineNumber: () => 3, getColumnNumber: () => 4, toString: () => 'x (node:internal/x:3:4)' };
      process.stdout.write(Error.prepareStackTrace(new TypeError('probe'), [site, other]));
    `;
    const r = inside(['--version'], probe);
    assert.equal(r.code, 0, r.stderr);
    const stack = r.stdout.split('\nPACKAGES')[0]!;
    assert.match(stack, /TypeError: probe\n/);
    assert.ok(stack.includes(`at main (${join(SRC, 'cli/main.ts')}:${want}:`), stack);
    assert.ok(stack.includes('at x (node:internal/x:3:4)'), stack);
    // A real error thrown inside the bundle goes through the same formatter.
    const real = inside(['--version'], `process.stdout.write(String(new Error('here').stack));`);
    assert.match(real.stdout, /Error: here\n\s+at /);
  });
});
