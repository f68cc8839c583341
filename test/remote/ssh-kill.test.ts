/**
 * Remote runs cut at a random moment through a real sshd: the ssh connection killed (its sshd
 * processes SIGKILLed: ssh sees the connection drop, the far mailferry loses its stdin and
 * stdout) or the far mailferry itself SIGKILLed, during a backup and during a two-way sync. The
 * cut run fails with 75 naming the host, a far side whose connection was cut ends by itself,
 * and the next run finishes with 0 leaving both sides with the same UIDs, GUIDs, flags and
 * bodies, every message once.
 *
 * The moment is a random fraction of how long the same run takes uncut, measured first, from
 * when the far mailferry is running; fast-check draws it (and prints the seed of a failure).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { openStore } from '../../src/storage/open-store.js';
import { req } from '../contract/store-contract.js';
import { corpusFiles } from '../support/corpus.js';
import { startSshd, type Sshd } from '../support/sshd.js';
import { bodyCounts, snapshot } from './mail-snapshot.js';
import { mf, mfChild } from './remote-cli-support.js';

const FOLDERS = [['INBOX'], ['Sent Items'], ['Lists', 'dev.null']];
/** Cut runs per case; MAILFERRY_SOAK=1 for many more. */
const soak = process.env.MAILFERRY_SOAK === '1';
const RUNS = soak ? 25 : 3;

type Kill = 'session' | 'far';

/** Running and not a zombie (PID 1 here reaps no orphans). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('remote runs cut at a random moment through a real sshd, then run again', { timeout: soak ? 3_600_000 : 300_000 }, () => {
  let sshd: Sshd;
  let dir: string;
  let setting: string;
  let mail: Buffer[];
  let serial = 0;
  /** How long an uncut backup and sync take once the far mailferry runs. */
  const uncut = { backup: 0, sync: 0 };

  before(async () => {
    sshd = await startSshd();
    setting = sshd.remoteCmdSetting(sshd.cli(['-o', 'mail_fsync=never', 'dsync-server']));
    dir = await mkdtemp(join(tmpdir(), 'mailferry-ssh-kill-'));
    mail = corpusFiles().filter((_, i) => i % 20 === 3).slice(0, 300).map((f) => readFileSync(f));
    for (const command of ['backup', 'sync'] as const) {
      const { args } = await prepare(command);
      const run = mfChild(args, setting);
      await sshd.waitForSession('dsync-server');
      const t0 = Date.now();
      assert.equal(await run.exited, 0, run.out.stderr);
      uncut[command] = Date.now() - t0;
    }
  });
  after(async () => {
    await sshd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function fill(location: string, bodies: Buffer[], seenEvery: number): Promise<void> {
    const s = await openStore(location, { create: true, fsync: false, warn: () => {} });
    try {
      for (const f of FOLDERS.slice(1)) await s.createMailbox(f);
      for (const [fi, folder] of FOLDERS.entries()) {
        const mine = bodies.filter((_, i) => i % FOLDERS.length === fi);
        await s.saveMessages(folder, mine.map((b, i) => req(b, { flags: i % seenEvery ? [] : ['\\Seen'], keywords: i % 7 ? [] : ['$Label1'] })));
      }
    } finally {
      await s.close();
    }
  }

  /** Fresh stores for one run: a backup of 300 messages, or a sync of 150 here with 150 there. */
  async function prepare(command: 'backup' | 'sync') {
    const n = serial++;
    const here = `maildir:${join(dir, `${n} here`)}:LAYOUT=fs`;
    const far = `maildir:${join(dir, `${n} far`)}:LAYOUT=fs`;
    if (command === 'backup') {
      await fill(here, mail, 2);
    } else {
      await fill(here, mail.slice(0, 150), 2);
      await fill(far, mail.slice(150), 3);
    }
    // Each message in the mailbox fill() put it in, whichever side it started on.
    const halves = command === 'backup' ? [mail] : [mail.slice(0, 150), mail.slice(150)];
    const expected = halves.flatMap((bodies) => bodies.map((b, i) => `${FOLDERS[i % FOLDERS.length]!.join('/')}:${createHash('md5').update(b).digest('hex')}`)).sort();
    return { here, far, args: [command, here, `remote:${sshd.host}:${far}`], expected };
  }

  async function view(location: string) {
    const s = await openStore(location, { create: false, fsync: false, warn: () => {} });
    try {
      return await snapshot(s);
    } finally {
      await s.close();
    }
  }

  async function cutAndRerun(command: 'backup' | 'sync', kill: Kill, fraction: number): Promise<string> {
    const { here, far, args, expected } = await prepare(command);
    const run = mfChild(args, setting);
    const session = await sshd.waitForSession('dsync-server');
    await sleep(Math.floor(fraction * uncut[command]));
    const killed = kill === 'session' ? sshd.killSession('dsync-server') : sshd.killFar('dsync-server');
    const code = await run.exited;
    // A cut that came after the run's last word may still end with 0: then the work is all done.
    assert.ok(code === 75 || code === 0, `exit ${code}: ${run.out.stderr}`);
    if (code === 75) assert.match(run.out.stderr, new RegExp(`^mailferry: error: remote ${sshd.host.replace(/\./g, '\\.')}: `, 'm'));
    // Cut off from its connection, the far mailferry ends by itself: its run lock must not outlive it.
    for (let i = 0; session.far.some((p) => running(p.pid)); i++) {
      assert.ok(i < 1000, `the far side still runs 10 s after its ${kill === 'session' ? 'connection was cut' : 'kill'}`);
      await sleep(10);
    }
    if (code === 0) await assertSame(here, far, expected);

    const again = mf(args, setting);
    assert.equal(again.code, 0, again.stderr);
    await assertSame(here, far, expected);
    return killed === 0 ? 'finished' : code === 0 ? 'cut after its end' : 'cut';
  }

  async function assertSame(here: string, far: string, expected: string[]): Promise<void> {
    const a = await view(here);
    assert.deepEqual(await view(far), a, 'both sides hold the same UIDs, GUIDs, flags and bodies');
    const counts = bodyCounts(a);
    assert.deepEqual([...counts.values()].filter((c) => c !== 1), [], 'every message once in its mailbox');
    assert.deepEqual([...counts.keys()].sort(), expected, 'nothing lost, nothing else');
  }

  for (const command of ['backup', 'sync'] as const) {
    for (const kill of ['session', 'far'] as const) {
      it(`${kill === 'session' ? 'ssh\'s connection' : 'the far mailferry'} killed at a random moment of a ${command === 'sync' ? 'two-way sync' : 'backup'}`, async () => {
        const outcomes: string[] = [];
        await fc.assert(
          fc.asyncProperty(fc.noBias(fc.integer({ min: 0, max: 950 })), async (permille) => {
            const fraction = permille / 1000;
            outcomes.push(`${(fraction * uncut[command]).toFixed(0)} ms: ${await cutAndRerun(command, kill, fraction)}`);
          }),
          { numRuns: RUNS, endOnFailure: true },
        );
        // The far side's part of a run is shorter than the run timed uncut, so on a busy machine
        // every random moment can fall after it; a kill as soon as the far side runs still cuts.
        for (let i = 0; i < 3 && !outcomes.some((o) => o.endsWith(': cut')); i++) outcomes.push(`0 ms: ${await cutAndRerun(command, kill, 0)}`);
        process.stdout.write(`# ${command}, ${kill} killed after (uncut ${uncut[command]} ms): ${outcomes.join(', ')}\n`);
        assert.ok(outcomes.some((o) => o.endsWith(': cut')), 'at least one run was cut in its middle');
      });
    }
  }
});
