/**
 * Interrupted remote runs: the far mailferry killed (SIGKILL) in the middle of a backup or a
 * sync, and the local one killed in the middle of a backup. The run that follows finishes and
 * both sides hold every message exactly once.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/storage/open-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { bodyCounts, snapshot } from './mail-snapshot.js';
import { CLI, mf, mfChild, script } from './remote-cli-support.js';

const open = (location: string) => openStore(location, { create: true, fsync: false, warn: () => {} });
const FOLDERS = [['INBOX'], ['Lists'], ['Work', 'Q3']];

async function fill(location: string, bodies: Buffer[]): Promise<void> {
  const s = await open(location);
  for (const f of FOLDERS.slice(1)) if (!(await s.mailboxStatus(f))) await s.createMailbox(f);
  for (let i = 0; i < FOLDERS.length; i++) {
    await s.saveMessages(FOLDERS[i]!, bodies.filter((_, j) => j % FOLDERS.length === i).map((b, k) => req(b, { flags: k % 3 ? [] : ['\\Seen'] })));
  }
  await s.close();
}

async function view(location: string, guids = true) {
  const s: MailStore = await open(location);
  try {
    return await snapshot(s, { guids });
  } finally {
    await s.close();
  }
}

function countFiles(root: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) {
        if (e.name === 'cur' || e.name === 'new') n += readdirSync(join(d, e.name)).length;
        else if (e.name !== 'tmp') walk(join(d, e.name));
      }
    }
  };
  if (existsSync(root)) walk(root);
  return n;
}

function bytesUnder(root: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.isFile()) n += statSync(join(d, e.name)).size;
    }
  };
  if (existsSync(root)) walk(root);
  return n;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(15);
  }
  return cond();
}

describe('remote runs killed midway, then run again', () => {
  let dir: string;
  let bodies: Buffer[];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-remote-kill-'));
    bodies = corpusMessages(1200);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** The far command, remembering its pid in `pidFile`. */
  function farCommand(name: string, pidFile: string): string {
    return script(dir, name, `echo $$ > '${pidFile}'\nexec '${process.execPath}' '${CLI}' -o mail_fsync=never dsync-server "$@"`);
  }

  for (const [kind, fraction] of [
    ['maildir', 0.15],
    ['maildir', 0.6],
    ['mbox', 0.4],
  ] as const) {
    it(`the far mailferry killed after ${fraction * 100}% of a backup to a remote ${kind}`, async () => {
      const tag = `far-${kind}-${fraction}`;
      const src = `maildir:${join(dir, `${tag}-src`)}:LAYOUT=fs`;
      const dstRoot = join(dir, `${tag}-dst`);
      const dst = kind === 'maildir' ? `maildir:${dstRoot}:LAYOUT=fs` : `mbox:${dstRoot}`;
      await fill(src, bodies);
      const total = bodies.reduce((n, b) => n + b.length, 0);
      const pidFile = join(dir, `${tag}.pid`);
      const cmd = farCommand(`${tag}.sh`, pidFile);
      const run = mfChild(['backup', src, `remote:farhost:${dst}`], cmd);
      const progress = () => (kind === 'maildir' ? countFiles(dstRoot) / bodies.length : bytesUnder(dstRoot) / total);
      assert.ok(await waitFor(() => progress() >= fraction, 60_000), 'the backup got that far');
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      const code = await run.exited;
      assert.equal(code, 75, run.out.stderr);
      assert.match(run.out.stderr, /remote farhost: .*(killed by SIGKILL|closed)/);

      const again = mf(['backup', src, `remote:farhost:${dst}`], cmd);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await view(dst, kind === 'maildir'), await view(src, kind === 'maildir'));
    });
  }

  it('the local mailferry killed in a backup: the far side ends too, and the rerun finishes', async () => {
    const src = `maildir:${join(dir, 'near-src')}`;
    const dstRoot = join(dir, 'near-dst');
    await fill(src, bodies);
    const pidFile = join(dir, 'near.pid');
    const cmd = farCommand('near.sh', pidFile);
    const run = mfChild(['backup', src, `remote:farhost:maildir:${dstRoot}`], cmd);
    assert.ok(await waitFor(() => countFiles(dstRoot) >= bodies.length * 0.3, 60_000));
    run.child.kill('SIGKILL');
    await run.exited;
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(await waitFor(() => !alive(pid), 10_000), 'the far mailferry ends when its input closes');
    const again = mf(['backup', src, `remote:farhost:maildir:${dstRoot}`], cmd);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await view(`maildir:${dstRoot}`), await view(src));
  });

  it('the far mailferry killed in a two-way sync: nothing lost or duplicated', async () => {
    const a = `maildir:${join(dir, 'sync-a')}:LAYOUT=fs`;
    const b = `maildir:${join(dir, 'sync-b')}`;
    await fill(a, bodies.slice(0, 600));
    await fill(b, bodies.slice(600, 1200));
    const pidFile = join(dir, 'sync.pid');
    const cmd = farCommand('sync.sh', pidFile);
    const run = mfChild(['sync', a, `remote:farhost:${b}`], cmd);
    // Both sides gain 600 messages; stop the far side when about half have arrived.
    assert.ok(await waitFor(() => countFiles(join(dir, 'sync-a')) + countFiles(join(dir, 'sync-b')) >= 1800, 60_000));
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    const code = await run.exited;
    assert.equal(code, 75, run.out.stderr);
    const again = mf(['sync', a, `remote:farhost:${b}`], cmd);
    assert.equal(again.code, 0, again.stderr);
    const va = await view(a);
    assert.deepEqual(await view(b), va);
    const counts = bodyCounts(va);
    assert.equal([...counts.values()].filter((c) => c !== 1).length, 0, 'every message once per mailbox');
    assert.equal(counts.size, 1200);
  });
});
