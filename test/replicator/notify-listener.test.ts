/**
 * The notify listener against a stand-in daemon (it records what it is told and plays the
 * `synced` events): the plugin's lines on the fifo and the socket, the aggregator's dialect,
 * sync requests answered by the right sync (not one that was already running), failures,
 * unknown users and the answer bound; hostile writers (garbage, over-long lines, a flood of
 * connections) are refused and logged while the listener keeps serving; the socket's and the
 * fifo's owner and mode, and files in the way kept, never removed. With a queue shared by
 * several replicators, a request is answered from the queue's record of a sync another ran.
 */
import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, lstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { NotifyListener, syncedAfter, type NotifyTarget, type SyncHistory } from '../../src/replicator/notify-listener.js';
import { decodePluginLine, NOTIFY_HANDSHAKE } from '../../src/replicator/notify-protocol.js';
import type { ReplicationPriority } from '../../src/replicator/replication-priority.js';
import type { SyncReport } from '../../src/replicator/sync-report.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

class StandIn extends EventEmitter<{ synced: [SyncReport] }> implements NotifyTarget {
  readonly told: [string, ReplicationPriority][] = [];
  readonly served = new Set(['alice', 'bob', 'jürgen müller']);
  readonly running = new Set<string>();
  async notify(user: string, priority: ReplicationPriority): Promise<boolean> {
    this.told.push([user, priority]);
    return this.served.has(user);
  }
  isSyncing(user: string): boolean {
    return this.running.has(user);
  }
  finish(user: string, result: SyncReport['result']): void {
    this.emit('synced', { user, priority: 'sync', full: false, result, exitCode: result === 'failed' ? 75 : 0, ms: 5 });
  }
}

const ROOT = process.getuid?.() === 0;

async function setUp(opts: Partial<Parameters<typeof NotifyListener.listen>[1]> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mf-notify-'));
  dirs.push(dir);
  const target = new StandIn();
  const logs: string[] = [];
  const socketPath = join(dir, 'run', 'replication-notify');
  const listener = await NotifyListener.listen(target, { socketPath, log: (l) => logs.push(l), gatherMs: 20, ...opts });
  return { dir, target, logs, socketPath, fifoPath: `${socketPath}-fifo`, listener };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(done: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what()}`);
    await sleep(10);
  }
}

/** A client connection that collects what it is sent and notes when it is closed. */
function client(path: string): Promise<{ s: Socket; got: () => string; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let got = '';
    let closed = false;
    s.on('data', (d) => (got += d.toString()));
    s.on('close', () => (closed = true));
    s.on('error', () => {});
    s.once('connect', () => resolve({ s, got: () => got, closed: () => closed }));
    s.once('error', reject);
  });
}

function writeFifo(path: string, data: string | Buffer): void {
  // As the plugin opens it: never waiting for a reader.
  const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
  } finally {
    closeSync(fd);
  }
}

test('the plugin\'s lines on the fifo and the socket reach the daemon, gathered one per user at the highest priority', async () => {
  const { target, listener, socketPath, fifoPath } = await setUp();
  try {
    assert.ok(lstatSync(fifoPath).isFIFO());
    let lines = '';
    for (let i = 0; i < 500; i++) lines += `alice\t${i === 250 ? 'high' : 'low'}\n`;
    writeFifo(fifoPath, lines);
    // A second writer after the first closed: the fifo still reads (no EOF while the listener holds it).
    writeFifo(fifoPath, 'j\x01\x31rgen\tnone\nj\u00fcrgen m\u00fcller\tlow\n');
    const c = await client(socketPath);
    c.s.write('bob\tlow\n');
    await until(() => target.told.length >= 3, 3000, () => JSON.stringify(target.told));
    await sleep(100);
    assert.deepEqual(new Set(target.told.map((t) => t.join(' '))), new Set(['alice high', 'jürgen müller low', 'bob low']));
    assert.equal(target.told.length, 3, 'one hand-over per user');
    c.s.destroy();
  } finally {
    await listener.close();
  }
});

test('a sync request is answered by the end of a sync that started after it: + when it succeeded, - when not', async () => {
  const { target, listener, socketPath, logs } = await setUp({ syncAnswerMs: 1500 });
  try {
    // alice's sync runs already: its end says nothing about the mail just saved.
    target.running.add('alice');
    const a = await client(socketPath);
    a.s.write('alice\tsync\n');
    await until(() => target.told.some(([u, p]) => u === 'alice' && p === 'sync'), 2000, () => JSON.stringify(target.told));
    target.finish('alice', 'ok');
    await sleep(50);
    assert.equal(a.got(), '', 'not answered by the sync that was running');
    target.finish('bob', 'ok');
    await sleep(50);
    assert.equal(a.got(), '', "not answered by another user's sync");
    target.finish('alice', 'again');
    await until(() => a.got() === '+\n', 2000, () => JSON.stringify(a.got()));

    const b = await client(socketPath);
    b.s.write('bob\tsync\n');
    await until(() => listener.waiting === 1, 2000, () => `${listener.waiting} waiting`);
    target.finish('bob', 'failed');
    await until(() => b.got() === '-\n', 2000, () => JSON.stringify(b.got()));
    const i = await client(socketPath);
    i.s.write('bob\tsync\n');
    await until(() => listener.waiting === 1, 2000, () => `${listener.waiting} waiting`);
    target.finish('bob', 'incomplete');
    await until(() => i.got() === '-\n', 2000, () => JSON.stringify(i.got()));

    // Nobody finishes: answered '-' at the bound.
    const t = await client(socketPath);
    const asked = Date.now();
    t.s.write('alice\tsync\n');
    await until(() => t.got() === '-\n', 4000, () => JSON.stringify(t.got()));
    assert.ok(Date.now() - asked >= 1400, `answered after ${Date.now() - asked} ms`);

    // A user the replicator does not serve: '-' at once and a log line.
    const u = await client(socketPath);
    u.s.write('mallory\tsync\n');
    await until(() => u.got() === '-\n', 2000, () => JSON.stringify(u.got()));
    assert.ok(logs.some((l) => /user mallory is not one this replicator serves/.test(l)), logs.join('\n'));
    for (const c of [a, b, i, t, u]) c.s.destroy();
    assert.equal(listener.waiting, 0);
  } finally {
    await listener.close();
  }
});

test("the aggregator's dialect: the handshake, U lines, sync requests answered with their ids in any order", async () => {
  const { target, listener, socketPath, logs } = await setUp();
  try {
    const c = await client(socketPath);
    c.s.write(`${NOTIFY_HANDSHAKE}\nU\tbob\thigh\nU\talice\tsync\t41\nU\tbob\tsync\t42\n`);
    await until(() => listener.waiting === 2, 2000, () => `${listener.waiting} waiting`);
    target.finish('bob', 'ok');
    target.finish('alice', 'failed');
    await until(() => c.got().split('\n').length === 3, 2000, () => JSON.stringify(c.got()));
    assert.equal(c.got(), '+\t42\n-\t41\n');
    await sleep(60);
    assert.deepEqual(target.told.filter(([, p]) => p !== 'sync'), [['bob', 'high']]);
    assert.ok(!c.closed(), 'the aggregator keeps its connection');
    assert.ok(logs.some((l) => /Dovecot's aggregator connected \(replicator-notify 1\.0\)/.test(l)), logs.join('\n'));
    // The aggregator's dialect has no bare plugin lines.
    c.s.write('alice\thigh\n');
    await until(() => c.closed(), 2000, () => 'still open');
  } finally {
    await listener.close();
  }
});

test('hostile writers are refused and logged; the listener keeps serving', async () => {
  const { target, listener, socketPath, fifoPath, logs } = await setUp({ maxConnections: 8 });
  try {
    const bad = [
      'garbage\n',
      'alice\tsoon\n',
      '../../etc/passwd\thigh\n',
      `${'x'.repeat(20_000)}\n`,
      'VERSION\treplicator-doveadm-client\t1\t0\n',
      Buffer.from([0xc3, 0x28, 0x09, 0x6c, 0x6f, 0x77, 0x0a]),
    ];
    for (const data of bad) {
      const c = await client(socketPath);
      c.s.write(data);
      await until(() => c.closed(), 2000, () => `connection not closed after ${JSON.stringify(String(data).slice(0, 40))}`);
    }
    // An endless line: closed once it passes the bound, nothing kept.
    const endless = await client(socketPath);
    for (let i = 0; i < 10 && !endless.closed(); i++) {
      endless.s.write(Buffer.alloc(4096, 0x61));
      await sleep(5);
    }
    await until(() => endless.closed(), 2000, () => 'endless line not cut');
    // Connections past the limit are refused at once; those within it stay.
    const held = await Promise.all(Array.from({ length: 8 }, () => client(socketPath)));
    const extra = await client(socketPath);
    await until(() => extra.closed(), 2000, () => 'a ninth connection was kept');
    for (const h of held) h.s.destroy();
    await until(() => listener.connections === 0, 2000, () => `${listener.connections} connections`);
    // Garbage on the fifo is skipped; the lines after it count.
    writeFifo(fifoPath, `nonsense\n${'y'.repeat(9000)}\n\x00\x01\x02\nbob\thigh\n`);
    await until(() => target.told.some(([u]) => u === 'bob'), 2000, () => JSON.stringify(target.told));
    assert.ok(!target.told.some(([u]) => u !== 'bob'), JSON.stringify(target.told));
    for (const re of [/a line longer than 8192 bytes/, /unknown priority "soon"/, /contains '\/'/, /not replicator-notify version 1/, /not UTF-8/, /connections already \(at most 8\)/, /fifo: .*skipped/]) {
      assert.ok(logs.some((l) => re.test(l)), `${re} in\n${logs.join('\n')}`);
    }
    // Still serving: a sync request is answered.
    const ok = await client(socketPath);
    ok.s.write('alice\tsync\n');
    await until(() => listener.waiting === 1, 2000, () => 'not waiting');
    target.finish('alice', 'ok');
    await until(() => ok.got() === '+\n', 2000, () => JSON.stringify(ok.got()));
    ok.s.destroy();
    // A flood of one kind of complaint is a few log lines, not one each.
    const before = logs.length;
    for (let i = 0; i < 200; i++) writeFifo(fifoPath, 'nonsense\n');
    await sleep(100);
    assert.ok(logs.length - before <= 10, logs.slice(before).join('\n'));
  } finally {
    await listener.close();
  }
});

test('owner and mode of the socket and the fifo; files in the way are kept; a socket that answers is not taken over', async () => {
  const { dir, listener, socketPath, fifoPath } = await setUp(ROOT ? { uid: 65534, gid: 65534 } : {});
  try {
    for (const p of [socketPath, fifoPath]) {
      const st = statSync(p);
      assert.equal(st.mode & 0o777, ROOT ? 0o660 : 0o600, p);
      if (ROOT) assert.deepEqual([st.uid, st.gid], [65534, 65534]);
    }
    await assert.rejects(
      NotifyListener.listen(new StandIn(), { socketPath, log: () => {} }),
      (err: Error & { exitCode?: number }) => err.exitCode === 75 && /something answers there already/.test(err.message),
    );
  } finally {
    await listener.close();
  }
  assert.ok(!existsSync(socketPath), 'the socket goes with the listener');
  assert.ok(lstatSync(fifoPath).isFIFO(), 'the fifo stays for the mail processes that hold it');

  // A plain file where the socket would be: refused (78) and left as it was.
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'precious');
  await assert.rejects(NotifyListener.listen(new StandIn(), { socketPath: file, log: () => {} }), (err: Error & { exitCode?: number }) => err.exitCode === 78 && /exists and is not a socket/.test(err.message));
  assert.equal(readFileSync(file, 'utf8'), 'precious');
  // A plain file where the fifo would be: refused, kept, and no socket left behind.
  const sock2 = join(dir, 'second');
  writeFileSync(`${sock2}-fifo`, 'precious too');
  await assert.rejects(NotifyListener.listen(new StandIn(), { socketPath: sock2, log: () => {} }), (err: Error & { exitCode?: number }) => err.exitCode === 78 && /is not a fifo/.test(err.message));
  assert.equal(readFileSync(`${sock2}-fifo`, 'utf8'), 'precious too');
  assert.ok(!existsSync(sock2));

  // The stale socket of a listener that died, and its fifo, are taken over.
  const again = await NotifyListener.listen(new StandIn(), { socketPath, log: () => {} });
  try {
    const c = await client(socketPath);
    c.s.destroy();
  } finally {
    await again.close();
  }
});

test('closing answers waiting sync requests with -, hands gathered changes to the daemon and frees the path', async () => {
  const { target, listener, socketPath, fifoPath } = await setUp({ gatherMs: 5000 });
  const c = await client(socketPath);
  c.s.write('alice\tsync\n');
  writeFifo(fifoPath, 'bob\thigh\n');
  await until(() => listener.waiting === 1, 2000, () => 'not waiting');
  await sleep(50);
  await listener.close();
  await until(() => c.got() === '-\n', 2000, () => JSON.stringify(c.got()));
  assert.ok(target.told.some(([u, p]) => u === 'bob' && p === 'high'), JSON.stringify(target.told));
  assert.ok(!existsSync(socketPath));
});

test('with a shared queue, a sync another replicator ran answers the request: one that began after it, not the one running then', async () => {
  const history = new Map<string, SyncHistory>([['alice', { lastFastSync: 100 }], ['bob', { lastFastSync: 100, claimedAt: 150 }]]);
  let asked = 0;
  const target = new (class extends StandIn {
    async syncHistory(users: string[]): Promise<Map<string, SyncHistory>> {
      asked++;
      return new Map(users.filter((u) => history.has(u)).map((u) => [u, { ...history.get(u)! }]));
    }
  })();
  const dir = mkdtempSync(join(tmpdir(), 'mf-notify-'));
  dirs.push(dir);
  const socketPath = join(dir, 'replication-notify');
  const listener = await NotifyListener.listen(target, { socketPath, log: () => {}, pollMs: 30 });
  try {
    const a = await client(socketPath);
    const b = await client(socketPath);
    a.s.write('alice\tsync\n');
    b.s.write('bob\tsync\n');
    await until(() => asked >= 4, 2000, () => `asked ${asked} times`);
    assert.equal(a.got() + b.got(), '', 'nothing synced since');
    // bob's running sync ends: it began before the request.
    history.set('bob', { lastFastSync: 150 });
    history.set('alice', { lastFastSync: 200 });
    await until(() => a.got() === '+\n', 2000, () => JSON.stringify(a.got()));
    await sleep(100);
    assert.equal(b.got(), '');
    history.set('bob', { lastFastSync: 400 });
    await until(() => b.got() === '+\n', 2000, () => JSON.stringify(b.got()));
    const settled = asked;
    await sleep(100);
    assert.equal(asked, settled, 'no polling once nobody waits');
    a.s.destroy();
    b.s.destroy();
  } finally {
    await listener.close();
  }
  assert.ok(!syncedAfter({ lastFastSync: 5 }, { lastFastSync: 5 }));
  assert.ok(syncedAfter({}, { lastFastSync: 5 }));
  assert.ok(!syncedAfter({ claimedAt: 7 }, { lastFastSync: 7 }));
  assert.ok(syncedAfter({ claimedAt: 7, lastFastSync: 1 }, { lastFastSync: 8 }));
  assert.ok(!syncedAfter({ lastFastSync: 3 }, {}));
});

test("a fifo or socket another takes over (a Dovecot whose aggregator kept these names) is said in the log", async () => {
  const { listener, socketPath, fifoPath, logs } = await setUp({ guardMs: 30 });
  try {
    await sleep(100);
    assert.deepEqual(logs, []);
    // As Dovecot's master does with a fifo_listener of the same name: removed and made again.
    unlinkSync(fifoPath);
    execFileSync('mkfifo', [fifoPath]);
    unlinkSync(socketPath);
    await until(() => logs.length >= 2, 2000, () => logs.join('\n'));
    assert.ok(logs.some((l) => /notify fifo .*replication-notify-fifo is no longer this replicator's \(replaced: by Dovecot's aggregator\?/.test(l)), logs.join('\n'));
    assert.ok(logs.some((l) => /notify socket .*replication-notify is no longer this replicator's \(removed/.test(l)), logs.join('\n'));
    await sleep(150);
    assert.equal(logs.length, 2, 'said once, not every check');
  } finally {
    await listener.close();
  }
});

test('random mixtures of good and bad lines on the fifo, cut anywhere: each good line counts, every bad one is skipped, nothing stops the listener', async () => {
  const { target, listener, fifoPath } = await setUp({ gatherMs: 5 });
  const users = ['alice', 'bob', 'jürgen müller', 'x@example.org'];
  const good = fc.record({ user: fc.constantFrom(...users), priority: fc.constantFrom('none', 'low', 'high', 'sync') }, { noNullPrototype: true }).map((r) => Buffer.from(`${r.user}\t${r.priority}`));
  const bad = fc.oneof(
    fc.string({ maxLength: 40 }).map((l) => Buffer.from(l)),
    // Raw bytes, invalid UTF-8 among them.
    fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
    fc.constantFrom('alice\tsoon', '../x\thigh', 'a\x01nb\tlow', `${'w'.repeat(9000)}\thigh`, 'alice\thigh\tmore').map((l) => Buffer.from(l)),
  ).map((b) => Buffer.from(b.filter((c) => c !== 0x0a && c !== 0x0d)));
  let round = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(good, bad), { maxLength: 20 }), async (lines) => {
        target.told.length = 0;
        const sentinel = `end-${round++}`;
        writeFifo(fifoPath, Buffer.concat([...lines.flatMap((l) => [l, Buffer.from('\n')]), Buffer.from(`${sentinel}\thigh\n`)]));
        await until(() => target.told.some(([u]) => u === sentinel), 3000, () => JSON.stringify(target.told));
        const expected = new Map<string, string>();
        const rank = ['none', 'low', 'high', 'sync'];
        for (const l of lines) {
          let r;
          try {
            r = decodePluginLine(l);
          } catch {
            continue;
          }
          if (r.priority === 'none') continue;
          const had = expected.get(r.user);
          if (had === undefined || rank.indexOf(r.priority) > rank.indexOf(had)) expected.set(r.user, r.priority);
        }
        const got = new Map<string, string>();
        for (const [u, p] of target.told) if (u !== sentinel) got.set(u, rank.indexOf(p) > rank.indexOf(got.get(u) ?? 'none') ? p : (got.get(u) ?? p));
        assert.deepEqual(got, expected);
      }),
      { numRuns: 40 },
    );
  } finally {
    await listener.close();
  }
});
