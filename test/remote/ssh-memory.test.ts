/**
 * Memory of a remote backup of one 200 MB message through a real sshd: the peak RSS of the
 * local mailferry and of the far one each stay within 1.5x of the same backup done locally,
 * and below the message's size, so neither side ever holds the message whole.
 *
 * Each mailferry process is started with a preloaded module that writes its VmHWM (the kernel's
 * peak resident set) when the process exits; the far one is started that way by the
 * dsync_remote_cmd itself, so ssh and the far shell are not counted, only mailferry.
 * The suite runs it without compression (a few seconds); MAILFERRY_SOAK=1 adds the default,
 * deflate, which spends most of its time compressing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSshd, type Sshd } from '../support/sshd.js';
import { CLI } from './remote-cli-support.js';

const MESSAGE_BYTES = 200 * 1024 * 1024;
const soak = process.env.MAILFERRY_SOAK === '1';

const PEAK_RECORDER = `import { readFileSync, writeFileSync } from 'node:fs';
process.on('exit', () => {
  const kb = /^VmHWM:\\s+(\\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 'none';
  const role = process.argv.includes('dsync-server') ? 'far' : 'near';
  writeFileSync(new URL(\`peak-\${role}-\${process.pid}\`, import.meta.url), kb);
});
`;

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('memory of a remote backup of one 200 MB message', { timeout: 300_000 }, () => {
  let sshd: Sshd;
  let dir: string;
  let src: string;
  let original: string;
  let local: { kb: number; ms: number };

  /** Runs mailferry under the recorder; returns the peaks it and its far side recorded, in kB. */
  function measured(args: string[], tag: string): { near: number; far?: number; ms: number } {
    const peaks = join(dir, `peaks-${tag}`);
    mkdirSync(peaks);
    const preload = join(peaks, 'recorder.mjs');
    writeFileSync(preload, PEAK_RECORDER);
    const farCmd = sshd.remoteCmdSetting(sshd.cli(['-o', 'mail_fsync=never', 'dsync-server']).replace(/^node /, `node --import ${preload} `));
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', preload, CLI, '-o', 'mail_fsync=never', '-o', `dsync_remote_cmd=${farCmd}`, ...args], { encoding: 'utf8', timeout: 240_000 });
    const ms = Date.now() - t0;
    assert.equal(r.status, 0, r.stderr);
    const read = (role: string) => {
      const files = readdirSync(peaks).filter((n) => n.startsWith(`peak-${role}-`));
      assert.ok(files.length <= 1, `one ${role} process: ${files.join(', ')}`);
      return files[0] === undefined ? undefined : Number(readFileSync(join(peaks, files[0]), 'utf8'));
    };
    const near = read('near');
    assert.ok(near !== undefined && near > 0, 'the local mailferry recorded its peak');
    return { near, far: read('far'), ms };
  }

  before(async () => {
    sshd = await startSshd();
    dir = await mkdtemp(join(tmpdir(), 'mailferry-ssh-memory-'));
    // One message: a header, then base64 lines of random bytes, as an attachment is sent.
    const root = join(dir, 'src');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(root, sub), { recursive: true });
    original = join(root, 'new', '1700000000.M1P1.sender');
    const fd = openSync(original, 'w');
    try {
      writeSync(fd, 'From: a@example.org\nTo: b@example.org\nSubject: a 200 MB attachment\nMessage-ID: <big@example.org>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n');
      for (let written = 0; written < MESSAGE_BYTES; ) {
        const lines = randomBytes(57 * 16 * 1024).toString('base64').replace(/.{76}/g, '$&\n');
        written += writeSync(fd, lines);
      }
    } finally {
      closeSync(fd);
    }
    src = `maildir:${root}`;
    const base = measured(['backup', src, `maildir:${join(dir, 'local')}`], 'local');
    local = { kb: base.near, ms: base.ms };
  });
  after(async () => {
    await sshd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const message = (root: string) => {
    const cur = join(root, 'cur');
    const names = readdirSync(cur);
    assert.equal(names.length, 1, `${cur}: ${names.join(', ')}`);
    return join(cur, names[0]!);
  };

  for (const compression of ['none', 'deflate'] as const) {
    it(`through ssh with dsync_compression=${compression}: both ends within 1.5x of a local backup's peak, the message byte for byte`, { skip: compression === 'deflate' && !soak && 'MAILFERRY_SOAK=1' }, async () => {
      const far = join(dir, `far-${compression}`);
      const remote = measured(['-o', `dsync_compression=${compression}`, 'backup', src, `remote:${sshd.host}:maildir:${far}`], compression);
      const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
      process.stdout.write(`# 200 MB message, peak RSS: local backup ${mb(local.kb)} (${local.ms} ms); remote (${compression}) here ${mb(remote.near)}, far ${mb(remote.far ?? 0)} (${remote.ms} ms)\n`);
      assert.ok(local.kb * 1024 < MESSAGE_BYTES, `a local backup peaks at ${mb(local.kb)}, under the message's 200 MB`);
      assert.ok(remote.far !== undefined, 'the far mailferry recorded its peak');
      assert.ok(remote.near <= local.kb * 1.5, `here: ${mb(remote.near)} against ${mb(local.kb)} locally`);
      assert.ok(remote.far <= local.kb * 1.5, `far: ${mb(remote.far)} against ${mb(local.kb)} locally`);
      assert.equal(await sha256(message(far)), await sha256(original));
    });
  }
});
