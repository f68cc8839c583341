/**
 * What the built CLI loads before it knows what to run: the command line's definitions only.
 * The configuration file's parser, the stores, SQLite and the sync engine load in the action of
 * the command that needs them, and the settings are still read there, errors naming the file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { CLI, cli, deliver } from './cli-child.js';

/** Sources that only an action needs: never loaded by the definitions of the commands. */
const ACTION_ONLY = ['src/storage/', 'src/sync/', 'src/config/config-file.ts', 'node_modules/smol-toml/', 'node_modules/better-sqlite3/'];

/**
 * Runs the CLI and returns the exit status and the sources of every module of the bundle it
 * loaded (through the source maps of the files Node's ES module loader translated).
 */
function loadedSources(args: string[]): { code: number | null; stderr: string; sources: Set<string> } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NODE_DEBUG: 'esm' } });
  const sources = new Set<string>();
  for (const m of r.stderr.matchAll(/Translating StandardModule (file:\/\/\S+\.js)/g)) {
    const file = fileURLToPath(m[1]!);
    const map = JSON.parse(readFileSync(`${file}.map`, 'utf8')) as { sources: string[] };
    for (const s of map.sources) sources.add(s.replace(/^(\.\.\/)+/, ''));
  }
  return { code: r.status, stderr: r.stderr, sources };
}

function actionOnly(sources: Set<string>): string[] {
  return [...sources].filter((s) => ACTION_ONLY.some((p) => s.startsWith(p)));
}

describe('cli: lean start-up', { timeout: 60_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-lean-'));
    deliver(join(dir, 'a'), 2, 'lean');
    deliver(join(dir, 'a', '.Lists.Work Stuff'), 1, 'lean-work');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('--version, --help, a command\'s help and a usage error load neither stores, SQLite, the TOML parser nor the sync engine', () => {
    const cases: [string[], number][] = [[['--version'], 0], [['--help'], 0], [['sync', '--help'], 0], [['backup', '--no-such-option', 'maildir:/x'], 64], [['config', '--help'], 0]];
    for (const [args, code] of cases) {
      const r = loadedSources(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr.slice(-500)}`);
      assert.ok(r.sources.has('src/cli/main.ts'), `${args.join(' ')}: the module list was not read (${[...r.sources].join(', ')})`);
      assert.deepEqual(actionOnly(r.sources), [], `${args.join(' ')} loaded what only an action needs`);
    }
  });

  it('a sync and a backup load them in their action, and a no-op rerun loads nothing else', () => {
    for (const command of ['backup', 'sync', 'sync']) {
      const r = loadedSources(['-o', 'mail_fsync=never', command, `maildir:${join(dir, 'a')}`, `maildir:${join(dir, 'b')}`]);
      assert.equal(r.code, 0, r.stderr.slice(-500));
      for (const p of ['src/storage/maildir/maildir-store.ts', 'src/storage/index/change-index.ts', 'src/config/config-file.ts', 'src/sync/']) {
        assert.ok([...r.sources].some((s) => s.startsWith(p)), `${command} did not load ${p}`);
      }
      for (const other of ['src/storage/imap/', 'src/storage/mbox/', 'src/server/', 'src/replicator/replicator', 'src/users/user-runner.ts', 'src/config/config-toml.ts']) {
        assert.ok(![...r.sources].some((s) => s.startsWith(other)), `${command} of two Maildirs loaded ${other}`);
      }
    }
    assert.equal(readdirSync(join(dir, 'b', '.Lists.Work Stuff', 'cur')).length, 1);
  });

  it('the configuration file is still read by backup, sync and mailbox, and its mistakes name it (78)', () => {
    const good = join(dir, 'good.toml');
    writeFileSync(good, `mail_location = "maildir:${join(dir, 'a')}"\nmail_fsync = "never"\n`);
    // The source comes from the file's mail_location alone.
    const backup = spawnSync(process.execPath, [CLI, '-c', good, 'backup', `maildir:${join(dir, 'from-file')}`], { encoding: 'utf8' });
    assert.equal(backup.status, 0, backup.stderr);
    assert.equal(readdirSync(join(dir, 'from-file', 'cur')).length, 2);

    const bad = join(dir, 'bad settings.toml');
    writeFileSync(bad, 'mail_fsync = "never"\nlock_timeout = "soon"\n');
    const pair = [`maildir:${join(dir, 'a')}`, `maildir:${join(dir, 'b')}`];
    for (const args of [['sync', ...pair], ['backup', ...pair], ['mailbox', 'list', pair[0]!]]) {
      const r = cli(['-c', bad, ...args]);
      assert.equal(r.code, 78, `${args[0]}: ${r.stderr}`);
      assert.equal(r.stderr, `mailferry: error: ${bad} line 2: invalid lock_timeout = "soon": expected whole seconds\n`);
      const missing = cli(['-c', join(dir, 'nope.toml'), ...args]);
      assert.equal(missing.code, 78, missing.stderr);
      assert.equal(missing.stderr, `mailferry: error: configuration file ${join(dir, 'nope.toml')}: no such file\n`);
    }
  });
});
