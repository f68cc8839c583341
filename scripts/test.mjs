#!/usr/bin/env node
// Runs the test suite with node's test runner: builds first (the CLI tests run dist/, the bundle),
// then every *.test.ts under test/ (`--unit` for test/unit only). Extra arguments are
// passed through as file filters: `npm test -- maildir` runs files whose path contains "maildir".
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => !a.startsWith('--'));

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

// As `npm run build`: typecheck, then bundle dist/ (scripts/build.mjs).
for (const [cmd, argv] of [['npx', ['--no-install', 'tsc', '-p', 'tsconfig.build.json']], [process.execPath, ['scripts/build.mjs']]]) {
  const build = spawnSync(cmd, argv, { stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
}

let files = walk(unitOnly ? 'test/unit' : 'test').sort();
if (filters.length > 0) files = files.filter((f) => filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// Stores whose index lives in the user's state directory (mbox, IMAP) must not leave test
// leftovers in the real one.
const stateHome = mkdtempSync(join(tmpdir(), 'mailferry-test-state-'));
const run = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=600000', '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: { ...process.env, XDG_STATE_HOME: stateHome } },
);
rmSync(stateHome, { recursive: true, force: true });
process.exit(run.status ?? 1);
