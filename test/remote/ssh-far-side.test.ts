/**
 * What the far side of a `remote:` location can be, through a real sshd: the default
 * dsync_remote_cmd's shape (`ssh -l%{login} %{host} mailferry dsync-server -u%{user}`) reaching a
 * host where mailferry is installed with its configuration, with and without -u; and far sides
 * that go wrong: one that stalls before or during the run (-T), one that is not mailferry, a
 * login sshd refuses. Each failure is one line naming the host, with its documented exit status,
 * and comes without a hang.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStore } from '../../src/storage/open-store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { CLI_MAIN, startSshd, type Sshd } from '../support/sshd.js';
import { snapshot } from './mail-snapshot.js';
import { CLI } from './remote-cli-support.js';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The CLI with these -o settings, not blocking the event loop (a test may act on the far side meanwhile). */
function mailferry(args: string[], onStart?: (pid: number) => void): Promise<Ran> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [CLI, '-o', 'mail_fsync=never', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  onStart?.(child.pid!);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code: code ?? (signal ? -1 : -2), stdout, stderr, ms: Date.now() - t0 });
    }),
  );
}

/** stderr without the far side's own lines (relayed after the host's name): what mailferry itself said. */
const ownLines = (r: Ran, host: string) => r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith(`${host}: `));

describe('far sides through a real sshd', { timeout: 180_000 }, () => {
  let sshd: Sshd;
  let dir: string;
  let src: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-ssh-far-'));
    // A far host with mailferry installed and configured: `mailferry` on the login's PATH reads
    // its configuration file, as /etc/mailferry/mailferry.toml would be read on a real host.
    const bin = join(dir, 'far-bin');
    mkdirSync(bin);
    const farConfig = join(dir, 'far.toml');
    writeFileSync(farConfig, [
      `mail_location = "maildir:${join(dir, 'far')}/%u/Maildir"`,
      `userdb = "passwd-file:${join(dir, 'far-users')}"`,
      'first_valid_uid = 0',
      'mail_fsync = "never"',
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'far-users'), `alice:x:${process.getuid!()}:${process.getgid!()}::${join(dir, 'far-home')}::\n`);
    writeFileSync(join(bin, 'mailferry'), `#!/bin/sh\nexec node '${CLI_MAIN}' -c '${farConfig}' "$@"\n`);
    chmodSync(join(bin, 'mailferry'), 0o755);
    sshd = await startSshd({ env: { PATH: [bin, dirname(process.execPath), '/usr/bin', '/bin'].join(':') } });
    src = `maildir:${join(dir, 'src')}`;
    const s = await openStore(src, { create: true, fsync: false, warn: () => {} });
    try {
      await s.createMailbox(['Sent Items']);
      // Enough that a backup is still copying when the stall test freezes the far side.
      const bodies = corpusMessages(400);
      await s.saveMessages(['INBOX'], bodies.slice(0, 300).map((b, i) => req(b, { flags: i % 2 ? ['\\Seen'] : [], keywords: i % 5 ? [] : ['$Label1'] })));
      await s.saveMessages(['Sent Items'], bodies.slice(300).map((b) => req(b, { flags: ['\\Seen', '\\Answered'] })));
    } finally {
      await s.close();
    }
  });
  after(async () => {
    await sshd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const view = async (location: string) => {
    const s = await openStore(location, { create: false, fsync: false, warn: () => {} });
    try {
      return await snapshot(s);
    } finally {
      await s.close();
    }
  };

  const defaultShape = () => sshd.remoteCmdSetting('mailferry dsync-server -u%{user}');

  it('the default dsync_remote_cmd with remote:login@host and no -u: the far mailferry serves its mail_location for the login', async () => {
    assert.match(defaultShape(), / -l%\{login\} %\{host\} mailferry dsync-server -u%\{user\}$/);
    // -u%{user} expands to nothing and is dropped, as dsync drops it.
    const r = await mailferry(['-o', `dsync_remote_cmd=${defaultShape()}`, 'backup', src, `remote:${sshd.login}@${sshd.host}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(`maildir:${join(dir, 'far', sshd.login, 'Maildir')}`), await view(src));
  });

  // A run over users hands its user to the stores it opens: %{user} is filled, and the far side
  // serves alice's mail, not the login's (which -A would otherwise overwrite user after user).
  it('the default dsync_remote_cmd with -u alice: the far side is asked for alice\'s mail, and the login\'s is left alone', async () => {
    const aliceSrc = `maildir:${join(dir, 'alice-src')}`;
    const s = await openStore(aliceSrc, { create: true, fsync: false, warn: () => {} });
    try {
      await s.saveMessages(['INBOX'], corpusMessages(505).slice(500).map((b) => req(b)));
    } finally {
      await s.close();
    }
    const loginsMail = `maildir:${join(dir, 'far', sshd.login, 'Maildir')}`;
    const loginsBefore = await view(loginsMail);
    writeFileSync(join(dir, 'users'), `alice:x:${process.getuid!()}:${process.getgid!()}::${join(dir, 'home')}::userdb_mail=${aliceSrc}\n`);
    const r = await mailferry([
      '-o', `dsync_remote_cmd=${defaultShape()}`, '-o', `userdb=passwd-file:${join(dir, 'users')}`, '-o', 'first_valid_uid=0',
      'backup', '-u', 'alice', `remote:${sshd.login}@${sshd.host}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(loginsMail), loginsBefore, "the login's own mail is untouched");
    assert.deepEqual(await view(`maildir:${join(dir, 'far', 'alice', 'Maildir')}`), await view(aliceSrc));
  });

  it('-T with a far side that never answers (ssh runs sleep): 75 naming the host, in about the -T time', async () => {
    const r = await mailferry(['-o', `dsync_remote_cmd=${sshd.remoteCmdSetting('sleep 100')}`, 'backup', '-T', '2', src, `remote:${sshd.host}`]);
    assert.equal(r.code, 75, r.stderr);
    assert.deepEqual(ownLines(r, sshd.host), [`mailferry: error: remote ${sshd.host}: no handshake from the peer within 2 seconds (-T)`]);
    assert.ok(r.ms >= 2000 && r.ms < 2000 + 5000, `ended after ${r.ms} ms`);
  });

  it('-T with a far mailferry that stops in the middle of a backup: 75 naming the host, without a hang', async () => {
    const far = join(dir, 'stalled');
    const setting = sshd.remoteCmdSetting(sshd.cli(['-o', 'mail_fsync=never', 'dsync-server']));
    const stopped: number[] = [];
    const running = mailferry(['-o', `dsync_remote_cmd=${setting}`, 'backup', '-T', '2', src, `remote:${sshd.host}:maildir:${far}`]);
    try {
      const session = await sshd.waitForSession('dsync-server');
      for (let i = 0; !existsSync(join(far, 'cur')) || readdirSync(join(far, 'cur')).length < 10; i++) {
        assert.ok(i < 2000, 'the backup got going');
        await sleep(5);
      }
      // Frozen as a far process is when its disk hangs: alive, holding the connection, silent.
      for (const p of session.far) {
        process.kill(p.pid, 'SIGSTOP');
        stopped.push(p.pid);
      }
      const t0 = Date.now();
      const r = await running;
      const ms = Date.now() - t0;
      assert.equal(r.code, 75, r.stderr);
      assert.deepEqual(ownLines(r, sshd.host), [`mailferry: error: remote ${sshd.host}: I/O has stalled for 2 seconds (-T)`]);
      // The stall is seen after -T; then the ssh command, which the frozen far side keeps
      // connected and would wait on, is killed at once.
      assert.ok(ms >= 2000 && ms < 2000 + 1500, `ended ${ms} ms after the far side stopped`);
    } finally {
      for (const pid of stopped) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('a far side that is not mailferry: one line naming the host, without a hang', async () => {
    // `echo`: a greeting that is not a hello. Documented as 78, a configuration error.
    let r = await mailferry(['-o', `dsync_remote_cmd=${sshd.remoteCmdSetting('echo hello')}`, 'backup', '-T', '20', src, `remote:${sshd.host}`]);
    assert.equal(r.code, 78, r.stderr);
    assert.deepEqual(ownLines(r, sshd.host), [
      `mailferry: error: remote ${sshd.host}: the peer does not speak mailferry's protocol: it sent 'hello' (is dsync_remote_cmd right, and does the far side's login print nothing on stdout?)`,
    ]);
    assert.ok(r.ms < 15_000, `${r.ms} ms`);

    // `cat`: our own hello comes back; that is no store, whatever follows it. 78 too.
    r = await mailferry(['-o', `dsync_remote_cmd=${sshd.remoteCmdSetting('cat')}`, 'backup', '-T', '20', src, `remote:${sshd.host}`]);
    assert.equal(r.code, 78, r.stderr);
    assert.deepEqual(ownLines(r, sshd.host), [
      `mailferry: error: remote ${sshd.host}: the peer sent back our own hello: the far command echoes its input instead of serving a store (is dsync_remote_cmd right, and does it run 'mailferry dsync-server' on the far side?)`,
    ]);
    assert.ok(r.ms < 15_000, `${r.ms} ms`);
  });

  it('a far mailferry that refuses before the protocol: its own status and message after the host, at once', async () => {
    // No LOCATION, no -u, and no mail_location there: the far mailferry's usage error, 64.
    let r = await mailferry(['-o', `dsync_remote_cmd=${sshd.remoteCmdSetting(sshd.cli(['dsync-server']))}`, 'backup', src, `remote:${sshd.host}`]);
    assert.equal(r.code, 64, r.stderr);
    assert.deepEqual(ownLines(r, sshd.host), [`mailferry: error: remote ${sshd.host}: dsync-server needs LOCATION, -u USER, or -o mail_location=LOCATION`]);
    assert.ok(r.ms < 10_000, `${r.ms} ms`);

    // A configuration file it cannot read: 78, naming the file there.
    const missing = join(dir, 'none.toml');
    r = await mailferry(['-o', `dsync_remote_cmd=${sshd.remoteCmdSetting(sshd.cli(['-c', missing, 'dsync-server']))}`, 'backup', src, `remote:${sshd.host}`]);
    assert.equal(r.code, 78, r.stderr);
    assert.deepEqual(ownLines(r, sshd.host), [`mailferry: error: remote ${sshd.host}: configuration file ${missing}: no such file`]);

    // A user this host knows and the far one does not: 67, as a local run for an unknown user.
    const bobSrc = `maildir:${join(dir, 'bob-src')}`;
    writeFileSync(join(dir, 'users-bob'), `bob:x:${process.getuid!()}:${process.getgid!()}::${join(dir, 'home')}::userdb_mail=${bobSrc}\n`);
    mkdirSync(join(dir, 'bob-src', 'cur'), { recursive: true });
    for (const sub of ['new', 'tmp']) mkdirSync(join(dir, 'bob-src', sub));
    r = await mailferry([
      '-o', `dsync_remote_cmd=${defaultShape()}`, '-o', `userdb=passwd-file:${join(dir, 'users-bob')}`, '-o', 'first_valid_uid=0',
      'backup', '-u', 'bob', `remote:${sshd.login}@${sshd.host}`,
    ]);
    assert.equal(r.code, 67, r.stderr);
    assert.deepEqual(ownLines(r, sshd.host), [
      `mailferry: user bob: failed (exit 67): remote ${sshd.host}: unknown user bob (passwd-file ${join(dir, 'far-users')})`,
      'mailferry: 1 of 1 users failed: bob',
    ]);
    assert.ok(!existsSync(join(dir, 'far', 'bob')), 'nothing was made for bob there');
  });

  it('a login sshd refuses: 75 naming the host and what ssh said, at once', async () => {
    const setting = sshd.remoteCmdSetting(sshd.cli(['dsync-server']));
    const r = await mailferry(['-o', `dsync_remote_cmd=${setting}`, 'backup', src, `remote:nosuchuser@${sshd.host}:maildir:${join(dir, 'refused')}`]);
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, new RegExp(`^${sshd.host}: nosuchuser@${sshd.host}: Permission denied \\(publickey\\)\\.$`, 'm'));
    const own = ownLines(r, sshd.host);
    assert.equal(own.length, 1, r.stderr);
    assert.match(own[0]!, new RegExp(`^mailferry: error: remote ${sshd.host.replace(/\./g, '\\.')}: the connection ended before the protocol started: .* exited with status 255 \\(.*Permission denied`));
    assert.ok(r.ms < 10_000, `${r.ms} ms`);
  });
});
