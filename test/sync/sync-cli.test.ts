/**
 * `mailferry sync` end to end: the built CLI on real Maildirs.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function withStore<T>(location: string, fn: (s: MaildirStore) => Promise<T>): Promise<T> {
  const s = MaildirStore.open(parseMaildirLocation(location), { create: true, fsync: false, warn: () => {} });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Per mailbox: sorted `uid guid flags keywords` lines. */
async function view(location: string): Promise<Record<string, string[]>> {
  return withStore(location, async (s) => {
    const out: Record<string, string[]> = {};
    for (const m of (await s.listMailboxes()).mailboxes) {
      const { messages } = await s.getMessages(m.name);
      out[`${m.name.join('/')} ${m.guid} ${m.uidValidity}`] = messages.map((x) => `${x.uid} ${x.guid} ${[...x.flags].sort().join(',')} ${[...x.keywords].sort().join(',')}`);
    }
    return out;
  });
}

describe('sync (CLI)', { timeout: 600_000 }, () => {
  let dir: string;
  const mail = corpusMessages(400);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-sync-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('merges changes from both sides; a second run skips every mailbox and exits 0', async () => {
    const a = `maildir:${join(dir, 'a1')}`;
    const b = `maildir:${join(dir, 'b1')}`;
    await withStore(a, async (s) => {
      await s.createMailbox(['Work']);
      await s.saveMessages(['INBOX'], mail.slice(0, 20).map((m) => req(m)));
      await s.saveMessages(['Work'], mail.slice(20, 30).map((m) => req(m)));
    });
    let r = cli('sync', '--json', a, b);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(b), await view(a));
    // Changes on both sides, the same number on each (dsync's fast mode misses this case).
    await withStore(a, (s) => s.updateFlags(['INBOX'], [{ uid: 1, flags: ['\\Seen'], keywords: [] }]));
    await withStore(b, (s) => s.updateFlags(['INBOX'], [{ uid: 2, flags: ['\\Flagged'], keywords: ['$Important'] }]));
    await withStore(b, (s) => s.saveMessages(['Work'], [req(mail[30]!)]));
    await withStore(a, (s) => s.expunge(['Work'], [3]));
    r = cli('sync', '--json', a, b);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.deepEqual([res.saved, res.flagUpdates, res.expunged], [1, 2, 1]);
    const va = await view(a);
    assert.deepEqual(await view(b), va);
    const inbox = Object.entries(va).find(([k]) => k.startsWith('INBOX '))![1];
    assert.match(inbox[0]!, /^1 \S+ \\Seen $/);
    assert.match(inbox[1]!, /^2 \S+ \\Flagged \$Important$/);
    r = cli('sync', '--json', a, b);
    const again = JSON.parse(r.stdout);
    assert.equal(r.code, 0);
    assert.deepEqual([again.saved, again.flagUpdates, again.expunged, again.skipped, again.mailboxes], [0, 0, 0, 2, 2]);
  });

  it('-1 merges into the destination only: the source is untouched, nothing deleted at the destination', async () => {
    const a = `maildir:${join(dir, 'a2')}`;
    const b = `maildir:${join(dir, 'b2')}`;
    await withStore(a, (s) => s.saveMessages(['INBOX'], mail.slice(0, 5).map((m) => req(m))));
    await withStore(b, (s) => s.saveMessages(['INBOX'], mail.slice(5, 8).map((m) => req(m))));
    const before = await view(a);
    const r = cli('sync', '-1', a, b);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(a), before, 'source unchanged');
    const inboxB = Object.entries(await view(b)).find(([k]) => k.startsWith('INBOX '))![1];
    assert.equal(inboxB.length, 8, 'destination kept its 3 and gained 5');
  });

  it('-s: an empty state starts, the printed state drives the next run, a corrupt one falls back to a full sync', async () => {
    const a = `maildir:${join(dir, 'a3')}`;
    const b = `maildir:${join(dir, 'b3')}`;
    await withStore(a, (s) => s.saveMessages(['INBOX'], mail.slice(0, 5).map((m) => req(m))));
    let r = cli('sync', '-s', '', a, b);
    assert.equal(r.code, 0, r.stderr);
    const state = r.stdout.trim();
    assert.match(state, /^mf1\.[A-Za-z0-9_-]+\.[0-9a-f]{8}$/);
    r = cli('sync', '--json', '-s', state, a, b);
    assert.equal(JSON.parse(r.stdout.split('\n').slice(1).join('\n')).skipped, 1);
    r = cli('sync', '-s', `${state.slice(0, -3)}zzz`, a, b);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /checksum mismatch.*falling back to a full sync/);
    assert.match(r.stdout.trim(), /^mf1\./);
  });

  it('killed at random points, re-run: both sides equal, nothing lost, nothing twice', async () => {
    const a = `maildir:${join(dir, 'a4')}`;
    const b = `maildir:${join(dir, 'b4')}`;
    await withStore(a, (s) => s.saveMessages(['INBOX'], mail.slice(0, 300).map((m) => req(m))));
    await withStore(b, async (s) => {
      await s.createMailbox(['Other']);
      await s.saveMessages(['Other'], mail.slice(300, 400).map((m) => req(m)));
    });
    for (const delay of [300, 450, 600, 800]) {
      await new Promise<void>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'sync', a, b], { stdio: 'ignore' });
        setTimeout(() => child.kill('SIGKILL'), delay);
        child.on('exit', () => resolve());
      });
    }
    const r = cli('sync', a, b);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
    if (r.code === 2) assert.equal(cli('sync', a, b).code, 0);
    const va = await view(a);
    assert.deepEqual(await view(b), va);
    const guids = Object.values(va).flat().map((l) => l.split(' ')[1]);
    assert.equal(guids.length, 400, 'every message once');
    assert.equal(new Set(guids).size, 400);
    assert.equal(readdirSync(join(dir, 'a4', 'cur')).length, 300);
  });

  it('a delivery during the run gives exit 2; the next run converges with exit 0', async () => {
    const a = `maildir:${join(dir, 'a5')}`;
    const b = `maildir:${join(dir, 'b5')}`;
    await withStore(a, (s) => s.saveMessages(['INBOX'], corpusMessages(2500).map((m) => req(m))));
    const child = spawn(process.execPath, [CLI, 'sync', a, b], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const exited = new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
    let running = true;
    void exited.then(() => (running = false));
    for (let n = 0; running; n++) {
      const tmp = join(dir, 'a5', 'tmp', `late-${n}`);
      writeFileSync(tmp, `Subject: late ${n}\n\nlate\n`);
      renameSync(tmp, join(dir, 'a5', 'new', `${Math.floor(Date.now() / 1000)}.M${n}P9.late`));
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await exited, 2, stderr);
    assert.match(stderr, /changed during the sync/);
    const r = cli('sync', a, b);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(b), await view(a));
  });

  it('a file a MUA deleted is deleted on the other side, not copied back', async () => {
    const a = `maildir:${join(dir, 'a6')}`;
    const b = `maildir:${join(dir, 'b6')}`;
    await withStore(a, (s) => s.saveMessages(['INBOX'], mail.slice(0, 4).map((m) => req(m))));
    assert.equal(cli('sync', a, b).code, 0);
    const victim = readdirSync(join(dir, 'b6', 'cur'))[0]!;
    unlinkSync(join(dir, 'b6', 'cur', victim));
    assert.equal(cli('sync', a, b).code, 0);
    assert.equal(readdirSync(join(dir, 'a6', 'cur')).length, 3);
    assert.equal(readdirSync(join(dir, 'b6', 'cur')).length, 3);
    assert.deepEqual(await view(b), await view(a));
  });

  it('-x excludes by mask and special-use, -g picks one mailbox by GUID', async () => {
    const a = `maildir:${join(dir, 'a7')}`;
    const b = `maildir:${join(dir, 'b7')}`;
    const guids = await withStore(a, async (s) => {
      const out: Record<string, string> = {};
      for (const n of [['Lists', 'dev'], ['Lists', 'users'], ['Trash'], ['Keep']]) out[n.join('.')] = (await s.createMailbox(n)).guid;
      return out;
    });
    let r = cli('sync', '-x', 'Lists.*', '-x', '\\Trash', a, b);
    assert.equal(r.code, 0, r.stderr);
    let names = Object.keys(await view(b)).map((k) => k.split(' ')[0]).sort();
    assert.deepEqual(names, ['INBOX', 'Keep']);
    r = cli('sync', '-g', guids['Lists.dev']!, a, b);
    assert.equal(r.code, 0, r.stderr);
    names = Object.keys(await view(b)).map((k) => k.split(' ')[0]).sort();
    assert.deepEqual(names, ['INBOX', 'Keep', 'Lists/dev']);
    assert.equal(cli('sync', '-g', 'xyz', a, b).code, 64);
  });

  it("-m '' syncs the mailbox tree only", async () => {
    const a = `maildir:${join(dir, 'a10')}`;
    const b = `maildir:${join(dir, 'b10')}`;
    await withStore(a, async (s) => {
      await s.createMailbox(['Tree', 'Only']);
      await s.saveMessages(['Tree', 'Only'], [req(mail[0]!)]);
    });
    for (const cmd of ['sync', 'backup']) {
      const r = cli(cmd, '-m', '', a, b);
      assert.equal(r.code, 0, r.stderr);
      const v = await view(b);
      assert.deepEqual(Object.keys(v).map((k) => k.split(' ')[0]).sort(), ['INBOX', 'Tree/Only']);
      assert.deepEqual(Object.values(v).flat(), [], `${cmd}: no messages copied`);
    }
  });

  it('-l waits for a run holding the lock, then gives up with exit 75', async () => {
    const a = `maildir:${join(dir, 'a8')}`;
    const b = `maildir:${join(dir, 'b8')}`;
    await withStore(a, (s) => s.saveMessages(['INBOX'], [req(mail[0]!)]));
    assert.equal(cli('sync', a, b).code, 0);
    const holder = spawn('sleep', ['30']);
    try {
      writeFileSync(join(dir, 'a8', 'mailferry-sync.lock'), `${holder.pid}:${hostname()}`);
      const started = Date.now();
      const r = cli('sync', '-l', '1', a, b);
      assert.equal(r.code, 75, r.stderr);
      assert.match(r.stderr, /mailferry-sync\.lock/);
      assert.ok(Date.now() - started >= 1000, 'it waited');
    } finally {
      holder.kill();
      unlinkSync(join(dir, 'a8', 'mailferry-sync.lock'));
    }
    assert.equal(cli('sync', '-l', '1', a, b).code, 0);
  });

  it('-t, -O and -I choose what is copied; nothing outside them is deleted or duplicated', async () => {
    const a = `maildir:${join(dir, 'a9')}`;
    const b = `maildir:${join(dir, 'b9')}`;
    const big = Buffer.concat([mail[0]!, Buffer.alloc(300_000, 'x')]);
    await withStore(a, (s) =>
      s.saveMessages(['INBOX'], [
        req(mail[1]!, { receivedDate: Date.UTC(2010, 0, 1) }),
        req(mail[2]!, { receivedDate: Date.UTC(2024, 0, 1), flags: ['\\Seen'] }),
        req(mail[3]!, { receivedDate: Date.UTC(2024, 0, 2) }),
        req(big, { receivedDate: Date.UTC(2024, 0, 3) }),
      ]),
    );
    const count = async () => Object.entries(await view(b)).find(([k]) => k.startsWith('INBOX '))?.[1].length ?? 0;
    let r = cli('sync', '-1', '-t', '2020-01-01', '-O', '-\\Seen', '-I', '100k', a, b);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await count(), 1, 'only the recent, unseen, small one');
    r = cli('backup', '-t', '2020-01-01', a, b);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.code, 0);
    r = cli('sync', a, b);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await count(), 4, 'an unfiltered sync brings the rest');
    assert.deepEqual(await view(b), await view(a));
    for (const bad of [['-t', 'yesterday-ish'], ['-I', 'huge'], ['-O', '-'], ['-T', '-5'], ['-T', '1.5'], ['-l', 'soon']]) {
      const x = cli('sync', ...bad, a, `maildir:${join(dir, 'never-2')}`);
      assert.equal(x.code, 64, `${bad.join(' ')}: ${x.stderr}`);
      assert.throws(() => readdirSync(join(dir, 'never-2')));
    }
  });

  describe('bad input', () => {
    it('same location, missing source, unknown option: one line, exit code, nothing created', () => {
      const loc = `maildir:${join(dir, 'a1')}`;
      let r = cli('sync', loc, loc);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /same mail location/);
      r = cli('sync', `maildir:${join(dir, 'nope')}`, `maildir:${join(dir, 'never')}`);
      assert.equal(r.code, 65);
      assert.match(r.stderr, /nope: no such file/);
      assert.throws(() => readdirSync(join(dir, 'never')));
      r = cli('sync', '--bogus', loc, `maildir:${join(dir, 'b1')}`);
      assert.equal(r.code, 64);
      r = cli('sync');
      assert.equal(r.code, 64);
      assert.match(r.stderr, /needs SOURCE and DESTINATION/);
    });
  });
});
