/**
 * The replicator's parts on their own: the mail fingerprint and the chokidar watcher on real
 * Maildirs and mbox files, the control protocol against hostile lines (fast-check), the status
 * tables, what a worker's exit status means for the queue, the pid lock, and which locations
 * can be watched.
 */
import { strict as assert } from 'node:assert';
import { appendFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { parseRequest } from '../../src/replicator/control-protocol.js';
import { acquireDaemonLock, PID_FILE } from '../../src/replicator/daemon-lock.js';
import { fingerprint } from '../../src/replicator/mail-fingerprint.js';
import { MailWatcher, type Hint } from '../../src/replicator/mail-watcher.js';
import { countLines, formatSpan, userLines, workerLines } from '../../src/replicator/status-format.js';
import { outcomeOf, reportLine } from '../../src/replicator/sync-report.js';
import { watchTargetOf, type WatchTarget } from '../../src/replicator/watch-target.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'mailferry-repl-parts-'));
  dirs.push(d);
  return d;
}

function maildir(root: string, folders: string[], messages = 3): void {
  for (const f of folders) {
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(root, f, sub), { recursive: true });
    for (let i = 0; i < messages; i++) writeFileSync(join(root, f, 'cur', `${1700000000 + i}.M${i}P1.host:2,S`), `Subject: ${i}\n\nx\n`);
  }
}

/** Every mtime under `root` pushed into the past, so fingerprints are not fresh. */
function age(paths: string[]): void {
  const past = new Date(Date.now() - 60_000);
  for (const p of paths) utimesSync(p, past, past);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('fingerprint: a delivery, a flag change, an expunge and a new folder each move it; reading and index writes do not; a fresh mtime marks it fresh', async () => {
  const root = join(tmp(), 'Maildir');
  maildir(root, ['', '.Work Stuff', '.Entw&APw-rfe'], 3);
  const t: WatchTarget[] = [{ kind: 'maildir', root }];
  const subdirs = ['', '.Work Stuff', '.Entw&APw-rfe'].flatMap((f) => ['cur', 'new'].map((s) => join(root, f, s)));
  age(subdirs);
  const base = await fingerprint(t);
  assert.equal(base.fresh, false);
  assert.deepEqual(await fingerprint(t), base, 'unchanged mail, same fingerprint');
  writeFileSync(join(root, 'dovecot-uidlist'), '3 V1 N4\n');
  writeFileSync(join(root, 'mailferry.index.sqlite'), 'x');
  writeFileSync(join(root, 'tmp', 'half-delivered'), 'x');
  assert.equal((await fingerprint(t)).value, base.value, 'metadata and tmp/ are not mail');

  const steps: [string, () => void][] = [
    ['a delivery', () => writeFileSync(join(root, '.Work Stuff', 'new', 'm9'), 'x')],
    ['a flag change', () => renameSync(join(root, 'cur', '1700000000.M0P1.host:2,S'), join(root, 'cur', '1700000000.M0P1.host:2,FS'))],
    ['an expunge', () => rmSync(join(root, '.Entw&APw-rfe', 'cur', '1700000001.M1P1.host:2,S'))],
    ['a new folder', () => maildir(root, ['.Lists.dev'], 0)],
  ];
  let last = base.value;
  for (const [what, act] of steps) {
    act();
    const fp = await fingerprint(t);
    assert.notEqual(fp.value, last, `${what} moves the fingerprint`);
    assert.equal(fp.fresh, true, `${what} just happened: fresh`);
    last = fp.value;
  }
  // A missing tree is a fingerprint too (it changes when the tree comes back), never an error.
  const gone = await fingerprint([{ kind: 'maildir', root: join(root, 'nope') }]);
  assert.equal(typeof gone.value, 'string');
});

test('fingerprint: LAYOUT=fs trees, an INBOX kept apart, mbox files and their INBOX', async () => {
  const d = tmp();
  const fs = join(d, 'fs');
  maildir(fs, ['', 'Archiv/v1.2 notes', '日本語'], 1);
  const inbox = join(d, 'inbox-apart');
  maildir(inbox, [''], 1);
  const t: WatchTarget[] = [{ kind: 'maildir', root: fs, inbox }];
  const a = await fingerprint(t);
  writeFileSync(join(fs, 'Archiv', 'v1.2 notes', 'new', 'm'), 'x');
  const b = await fingerprint(t);
  assert.notEqual(b.value, a.value, 'a delivery two levels down');
  writeFileSync(join(inbox, 'new', 'm'), 'x');
  assert.notEqual((await fingerprint(t)).value, b.value, 'a delivery into the INBOX kept apart');

  const mbox = join(d, 'mail');
  mkdirSync(join(mbox, 'Archive'), { recursive: true });
  writeFileSync(join(mbox, 'Sent'), 'From a@b Mon Jan  1 10:00:00 2024\nSubject: x\n\nx\n');
  writeFileSync(join(mbox, 'Archive', '2024'), '');
  const spool = join(d, 'spool-u1');
  writeFileSync(spool, '');
  const m: WatchTarget[] = [{ kind: 'mbox', root: mbox, inbox: spool }];
  const m1 = await fingerprint(m);
  writeFileSync(join(mbox, 'Sent.lock'), '');
  writeFileSync(join(mbox, '.subscriptions'), 'Sent\n');
  assert.equal((await fingerprint(m)).value, m1.value, 'dotlocks and dot files are not mailboxes');
  appendFileSync(spool, 'From a@b Mon Jan  1 10:00:00 2024\nSubject: y\n\ny\n');
  const m2 = await fingerprint(m);
  assert.notEqual(m2.value, m1.value, 'a delivery to the spool');
  appendFileSync(join(mbox, 'Archive', '2024'), 'From a@b Mon Jan  1 10:00:00 2024\n\nz\n');
  assert.notEqual((await fingerprint(m)).value, m2.value, 'a change in a folder file');
});

/** The distinct hints an action gives (one file write is several inotify events). */
async function collect(w: { hints: Hint[] }, act: () => void, ms = 400): Promise<Hint[]> {
  w.hints.length = 0;
  act();
  await sleep(ms);
  return [...new Set(w.hints)].sort();
}

test('watcher: new/ is high, cur/ and folders are low, metadata is nothing; message files are not tracked one by one; the limit holds', async () => {
  const d = tmp();
  const root = join(d, 'Maildir');
  maildir(root, ['', '.Work'], 2000);
  const seen: { user: string; hint: Hint }[] = [];
  const failures: string[] = [];
  const watcher = new MailWatcher(1, (user, hint) => seen.push({ user, hint }), (user, err) => failures.push(`${user}: ${err.message}`));
  try {
    const box = { hints: [] as Hint[] };
    const w = new MailWatcher(2, (_u, h) => box.hints.push(h), (u, e) => failures.push(`${u}: ${e.message}`));
    assert.equal(w.watch('alice', [{ kind: 'maildir', root }]), true);
    await sleep(800);
    assert.deepEqual(await collect(box, () => (writeFileSync(join(root, 'tmp', 'd1'), 'x'), renameSync(join(root, 'tmp', 'd1'), join(root, 'new', 'd1')))), ['high']);
    assert.deepEqual(await collect(box, () => renameSync(join(root, '.Work', 'cur', '1700000005.M5P1.host:2,S'), join(root, '.Work', 'cur', '1700000005.M5P1.host:2,FS'))), ['low']);
    assert.deepEqual(await collect(box, () => (writeFileSync(join(root, 'dovecot-uidlist'), '3 V1 N1\n'), writeFileSync(join(root, 'mailferry.index.sqlite-wal'), 'x'), writeFileSync(join(root, 'tmp', 'x'), 'x'))), [], 'metadata and tmp/ give no hint');
    assert.deepEqual(await collect(box, () => maildir(root, ['.Neu'], 0), 600), ['low']);
    assert.deepEqual(await collect(box, () => writeFileSync(join(root, '.Neu', 'new', 'x'), 'x')), ['high'], 'a new folder is watched too');
    // chokidar holds directories, never the 4,000 message names.
    const watched = (w as unknown as { watchers: Map<string, { getWatched(): Record<string, string[]> }[]> }).watchers.get('alice')![0]!.getWatched();
    const names = Object.values(watched).flat();
    assert.ok(names.length < 30, `tracked: ${names.length}`);
    assert.equal(names.filter((n) => n.includes(':2,')).length, 0);

    // The limit: one user watched, the next left to the periodic check.
    const other = join(d, 'Other');
    maildir(other, [''], 1);
    assert.equal(watcher.watch('bob', [{ kind: 'maildir', root: other }]), true);
    assert.equal(watcher.watch('carol', [{ kind: 'maildir', root }]), false);
    assert.equal(watcher.size, 1);
    await sleep(500);
    writeFileSync(join(other, 'new', 'x'), 'x');
    await sleep(400);
    assert.deepEqual([...new Set(seen.map((s) => `${s.user} ${s.hint}`))], ['bob high']);
    await watcher.unwatch('bob');
    const before = seen.length;
    writeFileSync(join(other, 'new', 'y'), 'x');
    await sleep(400);
    assert.equal(seen.length, before, 'an unwatched user gives no hints');
    await w.close();
    assert.deepEqual(failures, []);
  } finally {
    await watcher.close();
  }
});

test('watcher: a replica that does not exist yet is left out (its parent, shared by every replica, is not watched for it) and taken in by refresh once made', async () => {
  const d = tmp();
  const source = join(d, 'home', 'Maildir');
  maildir(source, [''], 1);
  const replica = join(d, 'replica', 'u1');
  mkdirSync(join(d, 'replica'));
  const box = { hints: [] as Hint[] };
  const w = new MailWatcher(5, (_u, h) => box.hints.push(h), () => {});
  try {
    assert.equal(w.watch('u1', [{ kind: 'maildir', root: source }, { kind: 'maildir', root: replica }]), true);
    await sleep(500);
    const watched = () => Object.keys((w as unknown as { watchers: Map<string, { getWatched(): Record<string, string[]> }[]> }).watchers.get('u1')![0]!.getWatched());
    assert.ok(!watched().includes(join(d, 'replica')), watched().join(' '));
    assert.deepEqual(await collect(box, () => mkdirSync(join(d, 'replica', 'u2'))), [], "another user's replica appearing is nothing to u1");
    maildir(replica, [''], 0);
    await w.refresh('u1');
    await sleep(500);
    assert.deepEqual(await collect(box, () => writeFileSync(join(replica, 'new', 'x'), 'x')), ['high']);
  } finally {
    await w.close();
  }
});

test('watcher: an mbox file that grows is high; a dotlock is nothing; a spool outside the tree is watched', async () => {
  const d = tmp();
  const root = join(d, 'mail');
  mkdirSync(root);
  writeFileSync(join(root, 'Sent'), '');
  const spool = join(d, 'spool');
  writeFileSync(spool, '');
  const box = { hints: [] as Hint[] };
  const w = new MailWatcher(5, (_u, h) => box.hints.push(h), () => {});
  try {
    assert.equal(w.watch('u', [{ kind: 'mbox', root, inbox: spool }]), true);
    await sleep(800);
    assert.deepEqual(await collect(box, () => writeFileSync(join(root, 'Sent.lock'), '')), []);
    assert.deepEqual(await collect(box, () => appendFileSync(join(root, 'Sent'), 'From a@b Mon Jan  1 10:00:00 2024\n\nx\n')), ['high']);
    assert.deepEqual(await collect(box, () => appendFileSync(spool, 'From a@b Mon Jan  1 10:00:00 2024\n\nx\n')), ['high']);
  } finally {
    await w.close();
  }
});

test('watch targets: local Maildir and mbox (with the user\'s home), nothing for IMAP and far locations', () => {
  assert.deepEqual(watchTargetOf('maildir:~/Maildir:LAYOUT=fs', '/home/a'), { kind: 'maildir', root: '/home/a/Maildir', inbox: undefined });
  assert.deepEqual(watchTargetOf('maildir:/srv/a:INBOX=/var/spool/a', '/home/a'), { kind: 'maildir', root: '/srv/a', inbox: '/var/spool/a' });
  assert.deepEqual(watchTargetOf('mbox:~/mail:INBOX=~/mail/inbox', '/home/a'), { kind: 'mbox', root: '/home/a/mail', inbox: undefined });
  assert.deepEqual(watchTargetOf('mbox:~/mail:INBOX=/var/mail/a', '/home/a'), { kind: 'mbox', root: '/home/a/mail', inbox: '/var/mail/a' });
  for (const far of ['imaps://a@mail.example.org', 'remote:backup@nas', 'tcps:a@replica.example.org', 'maildir:', 'maildir:/x:BOGUS=1']) assert.equal(watchTargetOf(far, '/home/a'), undefined, far);
});

test('control requests: every well-formed request parses; any other line is refused with a one-line reason, never a crash', () => {
  assert.deepEqual(parseRequest('{"cmd":"replicate","mask":"u*","priority":"high","full":true}'), { cmd: 'replicate', mask: 'u*', priority: 'high', full: true });
  assert.deepEqual(parseRequest('{"cmd":"replicate","mask":"u1"}'), { cmd: 'replicate', mask: 'u1', priority: 'sync', full: false });
  assert.deepEqual(parseRequest('{"cmd":"status"}'), { cmd: 'status' });
  for (const bad of ['', '[]', 'null', '{"cmd":"status","mask":""}', '{"cmd":"add"}', '{"cmd":"remove","mask":"a\\nb"}', '{"cmd":"replicate","mask":"a","priority":"none"}', '{"cmd":"__proto__"}', '{"cmd":"status","mask":7}']) {
    assert.throws(() => parseRequest(bad), (e: Error) => !e.message.includes('\n'), bad);
  }
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json(), fc.record({ cmd: fc.constantFrom('status', 'replicate', 'add', 'remove', 'dsync-status', 'x'), mask: fc.oneof(fc.string(), fc.integer(), fc.constant(null)), priority: fc.string(), full: fc.anything() }, { noNullPrototype: true }).map((o) => JSON.stringify(o))), (line) => {
      try {
        const r = parseRequest(line);
        assert.ok(['status', 'replicate', 'add', 'remove', 'dsync-status'].includes(r.cmd));
        if ('mask' in r && r.mask !== undefined) assert.ok(r.mask.length > 0 && !/[\0\n\r]/.test(r.mask));
      } catch (err) {
        assert.ok(err instanceof Error && !err.message.includes('\n'), String(err));
      }
    }),
    { numRuns: 500 },
  );
});

test('status output: spans as Dovecot shows them, the count lines, user and worker tables', () => {
  assert.equal(formatSpan(undefined), '-');
  assert.equal(formatSpan(0), '00:00:00');
  assert.equal(formatSpan(3_723_000), '01:02:03');
  assert.equal(formatSpan(90_061_000), '1d 01:01:01');
  const counts = { sync: 1, high: 2, low: 3, failedDue: 4, fullDue: 5, failedWaiting: 6, running: 7, total: 8 };
  const lines = countLines(counts, 9, 10);
  assert.deepEqual(lines.map((l) => l.split(/ {2,}/)), [
    ["Queued 'sync' requests", '1'],
    ["Queued 'high' requests", '2'],
    ["Queued 'low' requests", '3'],
    ["Queued 'failed' requests", '4'],
    ["Queued 'full resync' requests", '5'],
    ["Waiting 'failed' requests", '6'],
    ['Syncs running', '7'],
    ['Total number of known users', '8'],
    ['Users watched for changes', '9'],
    ['Users only checked periodically', '10'],
  ]);
  const now = 1_000_000_000;
  const users = userLines(
    [
      { user: 'alice@example.org', origin: 'userdb', priority: 'high', lastUpdate: now, forceFull: false, lastFastSync: now - 5000, lastFullSync: now - 3_600_000, lastSuccess: now - 5000, failures: 0, nextSyncAt: now - 1 },
      { user: 'bob', origin: 'added', priority: 'none', lastUpdate: 0, forceFull: false, failures: 3, nextTry: now + 60_000, nextSyncAt: now + 60_000 },
      { user: 'carol', origin: 'userdb', priority: 'none', lastUpdate: 0, forceFull: false, failures: 0, claimedBy: 'h:1', claimedAt: now, nextSyncAt: 0 },
    ],
    now,
  );
  assert.deepEqual(users.map((l) => l.split(/ {2,}/)), [
    ['username', 'priority', 'fast sync', 'full sync', 'success sync', 'failed', 'next sync secs'],
    ['alice@example.org', 'high', '00:00:05', '01:00:00', '00:00:05', '-', '0'],
    ['bob', 'none', '-', '-', '-', 'y (3)', '60'],
    ['carol', 'running', '-', '-', '-', '-', '-'],
  ]);
  const forged = userLines([{ user: 'evil\nbob  none  -', origin: 'userdb', priority: 'none', lastUpdate: 0, forceFull: false, failures: 0, nextSyncAt: 0 }], now);
  assert.equal(forged.length, 2, 'a line break in a user name does not forge a row');
  assert.match(forged[1]!, /^evil\\nbob/);
  const workers = workerLines([{ worker: 1, pid: 5, user: 'alice', full: true, priority: 'sync', since: now - 2000 }, { worker: 2 }], now);
  assert.deepEqual(workers.map((l) => l.split(/ {2,}/)), [['worker', 'username', 'type', 'priority', 'status'], ['1', 'alice', 'full', 'sync', 'Syncing for 00:00:02'], ['2', '-', '-', '-', 'Idle']]);
});

test("a worker's exit status for the queue: 0 ok, 2 changed during the sync (again) or incomplete, 67 gone, anything else failed", () => {
  const counts = { mailboxes: 3, skipped: 1, saved: 2, bytes: 300, flagUpdates: 1, expunged: 0, treeActions: 0 };
  assert.deepEqual(outcomeOf({ exitCode: 0, counts }, 5), { outcome: { result: 'ok', at: 5 }, result: 'ok' });
  assert.deepEqual(outcomeOf({ exitCode: 2, counts: { ...counts, changedDuringSync: true } as typeof counts }, 5), { outcome: { result: 'ok', at: 5, again: true }, result: 'again' });
  assert.deepEqual(outcomeOf({ exitCode: 2, counts }, 5), { outcome: { result: 'ok', at: 5 }, result: 'incomplete' });
  assert.deepEqual(outcomeOf({ exitCode: 67, error: 'user x: no such user' }, 5), { outcome: { result: 'gone', at: 5, error: 'user x: no such user' }, result: 'gone' });
  for (const code of [64, 65, 75, 77, 78, 1]) assert.equal(outcomeOf({ exitCode: code }, 5).result, 'failed');
  assert.equal(
    reportLine({ user: 'u1', priority: 'high', full: false, result: 'ok', exitCode: 0, counts, ms: 1234 }),
    'user u1: incremental sync (high) ok in 1.23 s: copied 2 messages (300 bytes), 1 flag updates, 0 expunges, 0 mailbox changes',
  );
  assert.equal(
    reportLine({ user: 'u1', priority: 'none', full: true, result: 'failed', exitCode: 75, error: 'remote nas: connection refused', ms: 20, retryInMs: 600_000 }),
    'user u1: full sync (none) failed in 0.02 s (exit 75): remote nas: connection refused; next try in 00:10:00',
  );
});

test('pid lock: one replicator a state directory; a lock whose process is gone is taken over', () => {
  const d = tmp();
  const release = acquireDaemonLock(d);
  // This very process holds it: a second acquire by another live pid is simulated with our parent's.
  writeFileSync(join(d, PID_FILE), `${process.ppid}\n`);
  assert.throws(() => acquireDaemonLock(d), (e: Error & { exitCode?: number }) => /another mailferry replicator \(pid \d+\) uses/.test(e.message) && e.exitCode === 75);
  writeFileSync(join(d, PID_FILE), '999999999\n');
  const again = acquireDaemonLock(d);
  again();
  release();
});
