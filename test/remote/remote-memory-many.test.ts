/**
 * Memory of a remote backup of an account of many small messages: the peak RSS of the local
 * mailferry and of the far one (`dsync-server`, run as the far command) each stay within 1.5x
 * of the same backup done locally, so neither side holds a mailbox's metadata twice or keeps
 * bodies it has sent. 10,000 messages in every run; 100,000 with MAILFERRY_SOAK=1.
 *
 * The far side is started as a plain command (no ssh: ssh and its shell would only add their
 * own processes, which are not measured anyway). Each mailferry process writes its VmHWM (the
 * kernel's peak resident set) when it exits, through a preloaded module, as in
 * ssh-memory.test.ts. Then the far copy is checked message by message against the source.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI } from './remote-cli-support.js';

const soak = process.env.MAILFERRY_SOAK === '1';
const MESSAGES = soak ? 100_000 : 10_000;
/** Three quarters in INBOX (one big listing), the rest in a folder whose name has a space and a dot. */
const FOLDERS = [
  { dir: '', share: 0.75 },
  { dir: '.Archive 2024.Q1', share: 0.25 },
];

const PEAK_RECORDER = `import { readFileSync, writeFileSync } from 'node:fs';
process.on('exit', () => {
  const kb = /^VmHWM:\\s+(\\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 'none';
  const role = process.argv.includes('dsync-server') ? 'far' : 'near';
  writeFileSync(new URL(\`peak-\${role}-\${process.pid}\`, import.meta.url), kb);
});
`;

/** A small message of its own: unique Message-ID and subject, a few lines of text. */
function message(i: number): string {
  return (
    `From: sender${i % 97}@example.org\nTo: alice@example.org\nSubject: message ${i} of the account\n` +
    `Message-ID: <m${i}.${MESSAGES}@example.org>\nDate: Mon, 1 Jan 2024 ${String(i % 24).padStart(2, '0')}:00:00 +0000\n\n` +
    `Body of message ${i}.\nA second line, so the body is not empty.\n`
  );
}

/** Writes the account straight into cur/ (no uidlist: the first reader numbers it), some with flags. */
function makeAccount(root: string): Map<string, number> {
  const perFolder = new Map<string, number>();
  let i = 0;
  for (const [f, folder] of FOLDERS.entries()) {
    const dir = join(root, folder.dir);
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
    const n = f === FOLDERS.length - 1 ? MESSAGES - i : Math.round(MESSAGES * folder.share);
    for (let k = 0; k < n; k++, i++) {
      const flags = i % 3 === 0 ? 'S' : i % 7 === 0 ? 'FS' : '';
      writeFileSync(join(dir, 'cur', `1700000000.M${i}P1.gen:2,${flags}`), message(i));
    }
    perFolder.set(folder.dir, n);
  }
  return perFolder;
}

/** SHA-1 of every message body under a Maildir folder (cur and new), sorted. */
function bodies(dir: string): string[] {
  const out: string[] = [];
  for (const sub of ['cur', 'new']) {
    for (const name of readdirSync(join(dir, sub))) out.push(createHash('sha1').update(readFileSync(join(dir, sub, name))).digest('hex'));
  }
  return out.sort();
}

describe(`memory of a remote backup of ${MESSAGES.toLocaleString('en')} small messages`, { timeout: soak ? 1_800_000 : 300_000 }, () => {
  let dir: string;
  let src: string;
  let perFolder: Map<string, number>;

  /** Runs mailferry under the recorder; returns the peaks it and its far side recorded, in kB. */
  function measured(args: string[], tag: string): { near: number; far?: number; ms: number } {
    const peaks = join(dir, `peaks-${tag}`);
    mkdirSync(peaks);
    const preload = join(peaks, 'recorder.mjs');
    writeFileSync(preload, PEAK_RECORDER);
    const farCmd = `${process.execPath} --import ${preload} ${CLI} -o mail_fsync=never dsync-server`;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', preload, CLI, '-o', 'mail_fsync=never', '-o', `dsync_remote_cmd=${farCmd}`, ...args], {
      encoding: 'utf8',
      timeout: soak ? 1_200_000 : 240_000,
    });
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
    dir = await mkdtemp(join(tmpdir(), 'mailferry-remote-many-'));
    perFolder = makeAccount(join(dir, 'src'));
    src = `maildir:${join(dir, 'src')}`;
    // The source's index is built once, untimed, so both measured runs find it alike.
    const r = spawnSync(process.execPath, [CLI, 'mailbox', 'status', src], { encoding: 'utf8', timeout: 600_000 });
    assert.equal(r.status, 0, r.stderr);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('each end peaks within 1.5x of the same backup done locally, and the far copy holds every message once', async () => {
    const local = measured(['backup', src, `maildir:${join(dir, 'local')}`], 'local');
    const far = join(dir, 'far');
    const remote = measured(['backup', src, `remote:farhost:maildir:${far}`], 'remote');
    const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
    process.stdout.write(
      `# ${MESSAGES} messages, peak RSS: local backup ${mb(local.near)} (${local.ms} ms); remote here ${mb(remote.near)}, far ${mb(remote.far ?? 0)} (${remote.ms} ms)\n`,
    );
    assert.ok(remote.far !== undefined, 'the far mailferry recorded its peak');
    assert.ok(remote.near <= local.near * 1.5, `here: ${mb(remote.near)} against ${mb(local.near)} locally`);
    assert.ok(remote.far <= local.near * 1.5, `far: ${mb(remote.far)} against ${mb(local.near)} locally`);
    for (const [folder, n] of perFolder) {
      const want = bodies(join(dir, 'src', folder));
      const got = bodies(join(far, folder));
      assert.equal(got.length, n, `${folder || 'INBOX'}: ${got.length} messages on the far side, expected ${n}`);
      assert.deepEqual(got, want, `${folder || 'INBOX'}: the far bodies are the source's`);
    }
  });
});
