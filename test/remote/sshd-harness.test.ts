/**
 * The throwaway sshd of test/support/sshd.ts, which the remote-location tests stand on: ssh
 * carries binary stdin/stdout unchanged and the far exit status back, the far side finds node
 * and this checkout's CLI, a wrong client key and a wrong host key both fail fast with 255,
 * sessions and far commands can be killed at a chosen moment, stop() leaves no process, and a
 * start costs a few tens of milliseconds.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MADE_USER, startSshd, type Sshd } from '../support/sshd.js';

const root = process.getuid?.() === 0;
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  ms: number;
}

interface Running {
  child: ReturnType<typeof spawn>;
  done: Promise<Ran>;
}

/** Spawns argv with `input` (kept open when undefined) and collects its output. */
function launch(argv: string[], input?: Buffer | string): Running {
  const t0 = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
  child.stdin!.on('error', () => {}); // EPIPE when the far side is cut before reading everything
  if (input !== undefined) child.stdin!.end(input);
  const done = new Promise<Ran>((resolve) =>
    child.once('close', (status, signal) =>
      resolve({ status, signal, stdout: Buffer.concat(out), stderr: err, ms: Date.now() - t0 })),
  );
  return { child, done };
}

const run = (argv: string[], input: Buffer | string = '') => launch(argv, input).done;

/** Splits a dsync_remote_cmd on spaces and fills %{login}, %{host} and %{user}, as the setting is read. */
function expandSetting(setting: string, vars: Record<string, string>): string[] {
  return setting.split(' ').filter((a) => a !== '').map((a) => a.replace(/%\{(\w+)\}/g, (_, k: string) => vars[k] ?? ''));
}

function newKey(dir: string, name: string): string {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path]);
  return path;
}

function withOption(argv: string[], from: string, to: string): string[] {
  assert.ok(argv.includes(from), `${from} is in the ssh command`);
  return argv.map((a) => (a === from ? to : a));
}

/** A pid with the start time it had, to tell it from a recycled one; a zombie is no longer running. */
function runningSince(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' ? undefined : f[19];
  } catch {
    return undefined;
  }
}

describe('sshd harness', () => {
  let sshd: Sshd;
  let scratch: string;
  before(async () => {
    sshd = await startSshd();
    scratch = mkdtempSync(join(tmpdir(), 'mailferry-sshd-test-'));
  });
  after(async () => {
    await sshd?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('ssh pipes a few MB of binary stdin to stdout byte for byte, and the far exit status back', async () => {
    const every = Buffer.alloc(256 * 16);
    for (let i = 0; i < every.length; i++) every[i] = i % 256;
    const input = Buffer.concat([every, randomBytes(4 * 1024 * 1024 + 13), Buffer.from('\r\n\0\x1b[0m\n.\r\n')]);
    const r = await run([...sshd.sshCommand, 'cat'], input);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.length, input.length);
    assert.ok(r.stdout.equals(input), 'the bytes came back unchanged');

    const failing = await run([...sshd.sshCommand, 'cat >/dev/null; exit 75'], 'x');
    assert.equal(failing.status, 75, failing.stderr);
  });

  test('the far side runs as the login user, finds node and this checkout\'s CLI, and keeps its state in the harness', async () => {
    const script = [
      'id -u', 'id -un', 'echo "$XDG_STATE_HOME"', 'node -p process.version',
      'mailferry --version', sshd.cli(['--version']),
    ].join('; ');
    const r = await run([...sshd.sshCommand, script]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.toString('utf8').trim().split('\n'), [
      String(sshd.uid), sshd.login, sshd.farStateDir, process.version, version, version,
    ]);
  });

  test('remoteCmdSetting, split on spaces with %{login} and %{host} filled, runs the inner command over this sshd', async () => {
    const setting = sshd.remoteCmdSetting(`${sshd.cli(['--version'])}; cat`);
    assert.match(setting, /^ssh .* -l%\{login\} %\{host\} node \S+\/dist\/cli\/main\.js --version; cat$/);
    const argv = expandSetting(setting, { login: sshd.login, host: sshd.host, user: 'alice' });
    const input = randomBytes(200_000);
    const r = await run(argv, input);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.subarray(0, version.length + 1).toString(), `${version}\n`);
    assert.ok(r.stdout.subarray(version.length + 1).equals(input));
  });

  test('a client key not in authorized_keys is refused with 255 at once, and the far command never runs', async () => {
    const wrong = newKey(scratch, 'wrong_key');
    const marker = join(sshd.farStateDir, 'ran-with-wrong-key');
    const r = await run([...withOption(sshd.sshCommand, sshd.clientKey, wrong), `touch ${marker}`]);
    assert.equal(r.status, 255);
    assert.match(r.stderr, /Permission denied \(publickey\)/);
    assert.ok(r.ms < 10_000, `refused in ${r.ms} ms`);
    assert.equal(existsSync(marker), false);
  });

  test('a host key other than the known one fails verification, and so does a missing entry', async () => {
    const marker = join(sshd.farStateDir, 'ran-with-wrong-host');
    const other = newKey(scratch, 'other_host_key');
    const wrongHosts = join(scratch, 'known_hosts.wrong');
    writeFileSync(wrongHosts, `[127.0.0.1]:${sshd.port} ${readFileSync(`${other}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
    const emptyHosts = join(scratch, 'known_hosts.empty');
    writeFileSync(emptyHosts, '');
    for (const hosts of [wrongHosts, emptyHosts]) {
      const argv = withOption(sshd.sshCommand, `UserKnownHostsFile=${sshd.knownHosts}`, `UserKnownHostsFile=${hosts}`);
      const r = await run([...argv, `touch ${marker}`]);
      assert.equal(r.status, 255, hosts);
      assert.match(r.stderr, /Host key verification failed/);
      assert.ok(r.ms < 10_000, `refused in ${r.ms} ms`);
    }
    assert.equal(existsSync(marker), false);
  });

  test('killSession cuts a connection mid-stream: ssh exits 255', async () => {
    const running = launch([...sshd.sshCommand, 'cat']);
    running.child.stdin!.write(randomBytes(64 * 1024));
    const session = await sshd.waitForSession('cat');
    assert.ok(session.far.some((f) => f.cmdline.join(' ') === 'cat'), JSON.stringify(session));
    assert.equal(sshd.killSession('cat'), 1);
    const r = await running.done;
    running.child.stdin!.destroy();
    assert.equal(r.status, 255);
    assert.match(r.stderr, /closed by remote host/);
    assert.ok(r.ms < 10_000);
    for (let i = 0; sshd.sessions('cat').length > 0; i++) {
      assert.ok(i < 200, 'the session is gone within 2 s');
      await sleep(10);
    }
  });

  test('killFar kills the far command: ssh ends with 255, other sessions go on', async () => {
    const victim = launch([...sshd.sshCommand, 'exec sleep 301']);
    const bystander = launch([...sshd.sshCommand, 'exec sleep 302']);
    await sshd.waitForSession('sleep 301');
    await sshd.waitForSession('sleep 302');
    assert.equal(sshd.killFar('sleep 301'), 1);
    const r = await victim.done;
    assert.equal(r.status, 255);
    assert.equal(sshd.sessions('sleep 302').length, 1);
    assert.equal(bystander.child.exitCode, null);
    assert.equal(sshd.killFar('sleep 302'), 1);
    assert.equal((await bystander.done).status, 255);
  });
});

test('stop() leaves no sshd, session or far command behind, even one whose session was cut', async () => {
  const sshd = await startSshd();
  const cut = launch([...sshd.sshCommand, 'exec sleep 303']);
  const kept = launch([...sshd.sshCommand, 'exec sleep 304']);
  const cutSession = await sshd.waitForSession('sleep 303');
  const keptSession = await sshd.waitForSession('sleep 304');
  // The cut session's far command outlives its sshd, so it is no longer under the listener.
  assert.equal(sshd.killSession('sleep 303'), 1);
  assert.equal((await cut.done).status, 255);
  const pids = [sshd.pid, ...cutSession.far.map((f) => f.pid), ...keptSession.sshd, ...keptSession.far.map((f) => f.pid)];
  const before = pids.map((pid) => [pid, runningSince(pid)] as const);
  assert.ok(before.every(([, since]) => since !== undefined), 'all were running before stop()');
  assert.ok(cutSession.far.every((f) => runningSince(f.pid) !== undefined), 'the cut far command outlived its session');

  await sshd.stop();
  const left = before.filter(([pid, since]) => runningSince(pid) === since).map(([pid]) => pid);
  assert.deepEqual(left, [], `still running after stop(): ${left.join(', ')}`);
  assert.equal(existsSync(sshd.dir), false);
  assert.equal((await kept.done).status, 255);
  await sshd.stop(); // twice is fine
});

test('a test process killed without stop() leaves no sshd, session or far command behind', async () => {
  // The harness runs in a child node, which is SIGKILLed once a far command runs: no exit hook of its own can help.
  const code = `
    const { startSshd } = await import(${JSON.stringify(new URL('../support/sshd.ts', import.meta.url).href)});
    const { spawn } = await import('node:child_process');
    const s = await startSshd();
    spawn(s.sshCommand[0], [...s.sshCommand.slice(1), 'exec sleep 306'], { stdio: 'ignore' });
    const session = await s.waitForSession('sleep 306');
    process.stdout.write(JSON.stringify({ dir: s.dir, pids: [s.pid, ...session.sshd, ...session.far.map((f) => f.pid)] }) + '\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString('utf8');
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (c, sig) => reject(new Error(`the child ended (${c ?? sig}) before its harness ran`)));
  });
  const { dir, pids } = JSON.parse(line) as { dir: string; pids: number[] };
  const before = pids.map((pid) => [pid, runningSince(pid)] as const);
  assert.ok(before.every(([, since]) => since !== undefined));
  child.kill('SIGKILL');
  for (let i = 0; ; i++) {
    const left = before.filter(([pid, since]) => runningSince(pid) === since).map(([pid]) => pid);
    if (left.length === 0 && !existsSync(dir)) break;
    assert.ok(i < 500, `5 s after the kill, still running: ${left.join(', ')}; ${dir} ${existsSync(dir) ? 'still there' : 'removed'}`);
    await sleep(10);
  }
});

test('a start and stop cost well under a second', async () => {
  const t0 = performance.now();
  const sshd = await startSshd();
  const started = performance.now() - t0;
  const r = await run([...sshd.sshCommand, 'true']);
  const connected = performance.now() - t0 - started;
  const t1 = performance.now();
  await sshd.stop();
  const stopped = performance.now() - t1;
  assert.equal(r.status, 0, r.stderr);
  process.stdout.write(`# sshd start ${started.toFixed(0)} ms, first ssh ${connected.toFixed(0)} ms, stop ${stopped.toFixed(0)} ms\n`);
  assert.ok(started + stopped < 1500, `start ${started} ms + stop ${stopped} ms`);
});

test('login "made": a system user of its own runs the far command', { skip: !root && 'needs root' }, async () => {
  const sshd = await startSshd({ login: 'made' });
  try {
    assert.equal(sshd.login, MADE_USER);
    assert.notEqual(sshd.uid, 0);
    const script = [
      'id -un', 'node -p process.version', sshd.cli(['--version']),
      `touch "$XDG_STATE_HOME/mine" && echo state-writable`,
      `touch ${sshd.dir}/not-mine 2>/dev/null || echo harness-dir-read-only`,
    ].join('; ');
    const r = await run([...sshd.sshCommand, script]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.toString('utf8').trim().split('\n'), [MADE_USER, process.version, version, 'state-writable', 'harness-dir-read-only']);
    // Only the harness's own login is allowed: root with the same key is turned away.
    const asRoot = await run([...withOption(sshd.sshCommand, MADE_USER, 'root'), 'true']);
    assert.equal(asRoot.status, 255);
    assert.match(asRoot.stderr, /Permission denied/);
  } finally {
    await sshd.stop();
  }
});
