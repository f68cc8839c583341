/**
 * The status page's parts without a daemon: the address parser; the page keeps its structure
 * whatever the user names, errors and search hold (fast-check); the metrics, read with a strict
 * parser of the text format, count what syncs report; the lag; the search; and the HTTP server
 * over a stand-in daemon (503 before the daemon is there, methods, paths, lengths, a bound on
 * requests worked on at once, keep-alive connections ended by close).
 */
import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import { request } from 'node:http';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ControlReply, ControlRequest } from '../../src/replicator/control-protocol.js';
import type { ReplicationPriority } from '../../src/replicator/replication-priority.js';
import type { QueueCounts, ReplicaUserState } from '../../src/replicator/replication-queue.js';
import { ReplicatorMetrics, replicationLagMs } from '../../src/replicator/replicator-metrics.js';
import { SyncHistory } from '../../src/replicator/status-history.js';
import { parseHttpAddress } from '../../src/replicator/status-http-address.js';
import { StatusHttpServer } from '../../src/replicator/status-http.js';
import { escapeHtml, renderPage } from '../../src/replicator/status-page.js';
import { takeSnapshot, userFilter, type StatusSnapshot } from '../../src/replicator/status-snapshot.js';
import type { SyncReport } from '../../src/replicator/sync-report.js';
import { parsePrometheus } from './replicator-http-prometheus.js';

const NOW = 1_800_000_000_000;

function user(name: string, extra: Partial<ReplicaUserState> = {}): ReplicaUserState {
  return { user: name, origin: 'userdb', priority: 'none', lastUpdate: NOW - 60_000, forceFull: false, lastFastSync: NOW - 30_000, lastFullSync: NOW - 30_000, lastSuccess: NOW - 30_000, failures: 0, nextSyncAt: NOW + 3_600_000, ...extra };
}

const COUNTS: QueueCounts = { sync: 1, high: 2, low: 3, failedDue: 4, fullDue: 5, failedWaiting: 6, running: 1, total: 3 };

/** A daemon as the server sees it: control answers from a fixed list of users, and events. */
class FakeDaemon extends EventEmitter<{ synced: [SyncReport]; hint: [string, ReplicationPriority] }> {
  hold: Promise<void> | undefined;
  asked = 0;
  constructor(public users: ReplicaUserState[]) {
    super();
  }
  async answer(r: ControlRequest): Promise<ControlReply> {
    this.asked++;
    await this.hold;
    if (r.cmd === 'dsync-status') return { ok: true, cmd: 'dsync-status', now: NOW, workers: [{ worker: 1, pid: 10, user: 'busy', full: false, priority: 'high', since: NOW - 2000 }, { worker: 2, pid: 11 }] };
    if (r.cmd !== 'status') return { ok: false, error: 'no', exitCode: 64 };
    if (r.mask === undefined) return { ok: true, cmd: 'status', now: NOW, counts: COUNTS, watched: 2, polled: 1 };
    return { ok: true, cmd: 'status-users', now: NOW, users: this.users };
  }
}

test('parseHttpAddress: HOST:PORT and [IPV6]:PORT, the port always given', () => {
  assert.deepEqual(parseHttpAddress('127.0.0.1:9180'), { host: '127.0.0.1', port: 9180 });
  assert.deepEqual(parseHttpAddress('localhost:0'), { host: 'localhost', port: 0 });
  assert.deepEqual(parseHttpAddress('[::1]:65535'), { host: '::1', port: 65535 });
  assert.deepEqual(parseHttpAddress('status.example.org:80'), { host: 'status.example.org', port: 80 });
  for (const bad of ['', ':80', '127.0.0.1', '127.0.0.1:', '127.0.0.1:65536', '127.0.0.1:-1', '::1:80', '[::1]', '[::1]80', '[x]:80', 'a b:80', 'a/b:80', '127.0.0.1:80 ', '127.0.0.1:123456']) {
    assert.throws(() => parseHttpAddress(bad), /expected HOST:PORT/, JSON.stringify(bad));
  }
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 65535 }), (host, port) => {
      assert.deepEqual(parseHttpAddress(`${host}:${port}`), { host, port });
    }),
  );
});

function snapshotOf(names: string[], error: string, query: string): StatusSnapshot {
  return {
    now: NOW,
    startedAt: NOW - 100_000,
    query,
    counts: COUNTS,
    watched: names.length,
    polled: 0,
    lagMs: 5000,
    workers: [{ worker: 1, pid: 1, user: names[0], full: true, priority: 'sync', since: NOW - 1000 }],
    users: names.map((n, i) => ({ user: n, condition: i === 0 ? 'failing' : 'idle', priority: 'low', lastSync: NOW - 1000, lastSuccess: undefined, lastFullSync: NOW - 5000, lagMs: 1000, failures: i === 0 ? 2 : 0, lastError: i === 0 ? error : undefined, nextSyncInMs: 0 })),
    matched: names.length,
    total: names.length,
    totals: { syncs: 2, byResult: { ok: 1, again: 0, incomplete: 0, failed: 1, gone: 0 }, messages: 3, bytes: 4096 },
    recent: names.map((n) => ({ at: NOW - 500, user: n, full: false, priority: 'high', result: 'failed', ms: 20, error })),
  };
}

const tags = (html: string) => html.match(/<[^>]*>/g) ?? [];

test('the page keeps its structure whatever names, errors and searches hold: each is text, escaped', () => {
  const hostile = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "'; alert(1); '", '</td></tr></table><h1>x', '&lt;already&gt;', 'ünïcödé 日本 @ & <'];
  const html = renderPage(snapshotOf(hostile, '<b>boom</b>', '"><script>'));
  for (const n of hostile) assert.ok(html.includes(`<td>${escapeHtml(n)}</td>`), n);
  assert.equal((html.match(/<script>/g) ?? []).length, 1, 'the page has one script, its own');
  assert.ok(html.includes('value="&quot;&gt;&lt;script&gt;"'));
  assert.ok(!html.includes('<b>boom'));
  fc.assert(
    fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 30 }), { minLength: 1, maxLength: 5 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 20 }), (names, error, query) => {
      const plain = renderPage(snapshotOf(names.map(() => 'x'), 'e', 'q'));
      const given = renderPage(snapshotOf(names, error, query));
      // The same elements and attributes in the same order: no value opened or closed a tag.
      assert.deepEqual(tags(given).map((t) => t.replace(/"[^"]*"/g, '""')), tags(plain).map((t) => t.replace(/"[^"]*"/g, '""')));
    }),
    { numRuns: 100 },
  );
});

test('the search: a part of the name in any case, or a mask; the users shown are bounded, the most urgent first', async () => {
  assert.ok(userFilter('')('anyone'));
  assert.ok(userFilter('ALI')('alice@example.org'));
  assert.ok(!userFilter('bob')('alice@example.org'));
  assert.ok(userFilter('*@example.org')('alice@example.org'));
  assert.ok(!userFilter('*@example.org')('alice@example.org.evil'));
  assert.ok(userFilter('a?ice*')('alice@x'));
  const users = [
    user('idle-b'),
    user('idle-a'),
    user('queued-old', { priority: 'low', lastUpdate: NOW - 50_000 }),
    user('queued-new', { priority: 'high', lastUpdate: NOW - 1000 }),
    user('failing', { failures: 3, lastError: 'replica down', nextTry: NOW + 1000, nextSyncAt: NOW + 1000 }),
    user('running', { claimedBy: 'h:1', claimedAt: NOW - 7000, priority: 'none' }),
  ];
  const d = new FakeDaemon(users);
  const all = await takeSnapshot(d, new SyncHistory(NOW), '');
  assert.deepEqual(all.users.map((u) => u.user), ['running', 'failing', 'queued-old', 'queued-new', 'idle-a', 'idle-b']);
  assert.equal(all.users[1]!.lastError, 'replica down');
  assert.equal(all.users[0]!.nextSyncInMs, undefined);
  assert.equal(all.lagMs, 50_000, 'the oldest change waiting');
  const some = await takeSnapshot(d, new SyncHistory(NOW), 'IDLE', 1);
  assert.deepEqual(some.users.map((u) => u.user), ['idle-a']);
  assert.equal(some.matched, 2);
  assert.equal(some.total, 6);
  assert.match(renderPage(some), /2 of 6 users match; the first 1 are shown/);
});

test('replicationLagMs: the oldest pending change or running sync; 0 when nothing waits', () => {
  assert.equal(replicationLagMs([], NOW), 0);
  assert.equal(replicationLagMs([user('a'), user('b')], NOW), 0);
  assert.equal(replicationLagMs([user('a', { priority: 'low', lastUpdate: NOW - 9000 }), user('b', { claimedBy: 'x', claimedAt: NOW - 12_000 })], NOW), 12_000);
  assert.equal(replicationLagMs([user('a', { priority: 'high', lastUpdate: NOW + 5000 })], NOW), 0, 'a clock step back is no negative lag');
});

const report = (r: Partial<SyncReport>): SyncReport => ({ user: 'u', priority: 'high', full: false, result: 'ok', exitCode: 0, ms: 300, ...r });
const counts = (saved: number, bytes: number) => ({ mailboxes: 1, skipped: 0, treeActions: 0, saved, bytes, flagUpdates: 0, expunged: 0 });

test('metrics: syncs by result, durations, messages and bytes, watcher events, and the queue read at each scrape', async () => {
  const d = new FakeDaemon([user('a', { priority: 'low', lastUpdate: NOW - 4000 }), user('b')]);
  const m = new ReplicatorMetrics(d, { processMetrics: false });
  const before = parsePrometheus(await m.text());
  assert.deepEqual(before.get('mailferry_replication_syncs_total')!.samples.map((s) => [s.labels.result, s.value]), [['ok', 0], ['again', 0], ['incomplete', 0], ['failed', 0], ['gone', 0]]);
  m.synced(report({ counts: counts(3, 3000) }));
  m.synced(report({ full: true, ms: 45_000, counts: counts(2, 500) }));
  m.synced(report({ result: 'failed', exitCode: 75, error: 'down', ms: 20 }));
  m.hint('high');
  m.hint('high');
  m.hint('low');
  const f = parsePrometheus(await m.text());
  const v = (name: string, labels: Record<string, string> = {}, sampleName = name) => f.get(name)!.samples.find((s) => s.name === sampleName && Object.entries(labels).every(([k, x]) => s.labels[k] === x))!.value;
  assert.equal(v('mailferry_replication_syncs_total', { result: 'ok' }), 2);
  assert.equal(v('mailferry_replication_syncs_total', { result: 'failed' }), 1);
  assert.equal(v('mailferry_replication_messages_copied_total'), 5);
  assert.equal(v('mailferry_replication_bytes_copied_total'), 3500);
  assert.equal(v('mailferry_replication_watcher_events_total', { priority: 'high' }), 2);
  assert.equal(v('mailferry_replication_watcher_events_total', { priority: 'low' }), 1);
  const h = 'mailferry_replication_sync_duration_seconds';
  assert.equal(v(h, { type: 'incremental' }, `${h}_count`), 2);
  assert.equal(v(h, { type: 'full' }, `${h}_count`), 1);
  assert.equal(v(h, { type: 'full', le: '30' }, `${h}_bucket`), 0);
  assert.equal(v(h, { type: 'full', le: '60' }, `${h}_bucket`), 1);
  assert.equal(v(h, { type: 'incremental' }, `${h}_sum`), 0.32);
  assert.equal(v('mailferry_replication_lag_seconds'), 4);
  assert.deepEqual(
    Object.fromEntries(f.get('mailferry_replication_queue_depth')!.samples.map((s) => [s.labels.priority, s.value])),
    { sync: 1, high: 2, low: 3, failed: 4, full: 5, failed_waiting: 6 },
  );
  assert.equal(v('mailferry_replication_syncs_running'), 1);
  assert.equal(v('mailferry_replication_users', { watch: 'polled' }), 1);
  assert.equal(v('mailferry_replication_workers', { state: 'busy' }), 1);
  assert.equal(v('mailferry_replication_workers', { state: 'idle' }), 1);
  // Two replicators in one process count apart: nothing is registered globally.
  const other = parsePrometheus(await new ReplicatorMetrics(d, { processMetrics: false }).text());
  assert.equal(other.get('mailferry_replication_syncs_total')!.samples.find((s) => s.labels.result === 'ok')!.value, 0);
});

test('the Prometheus reader refuses what is not the text format', () => {
  const good = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n';
  assert.equal(parsePrometheus(good).get('a_total')!.samples[0]!.value, 2);
  for (const bad of [
    good.slice(0, -1),
    '# HELP a A.\n# TYPE a counter\nb 1\n',
    '# HELP a A.\n# TYPE a gauge\na{x=1} 1\n',
    '# HELP a A.\n# TYPE a gauge\na one\n',
    '# HELP a A.\n# TYPE a gauge\na{x="1",x="2"} 1\n',
    '# HELP a A.\n# TYPE a histogram\na_bucket{le="1"} 2\na_bucket{le="+Inf"} 1\na_count 1\na_sum 1\n',
    '# HELP a A.\n# TYPE a histogram\na_bucket{le="1"} 1\na_count 1\na_sum 1\n',
    '# comment\n',
  ]) {
    assert.throws(() => parsePrometheus(bad), JSON.stringify(bad));
  }
});

function get(port: number, path: string, method = 'GET', agent?: unknown): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: (agent ?? false) as never }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(method === 'POST' || method === 'PUT' ? 'data' : undefined);
  });
}

test('the HTTP server: 503 until the daemon is there; GET and HEAD of three paths; lengths and requests at once bounded; close ends keep-alive connections', async () => {
  const lines: string[] = [];
  const server = await StatusHttpServer.listen({ address: { host: '127.0.0.1', port: 0 }, origin: '--http', allowRemote: false, log: (l) => lines.push(l), processMetrics: false });
  const port = Number(/:(\d+)$/.exec(server.address)![1]);
  assert.match(lines[0]!, new RegExp(`^status page on http://127\\.0\\.0\\.1:${port}/, Prometheus metrics on http://127\\.0\\.0\\.1:${port}/metrics \\(no authentication\\)$`));
  try {
    const early = await get(port, '/');
    assert.equal(early.status, 503);
    assert.match(early.body, /starting/);
    const d = new FakeDaemon([user('<b>x</b>'), user('plain')]);
    server.attach(d);
    const page = await get(port, '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html; charset=utf-8/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.ok(page.body.includes('<td>&lt;b&gt;x&lt;/b&gt;</td>'));
    const json = JSON.parse((await get(port, '/status.json?q=PLAIN')).body) as { users: { user: string }[]; view: { tables: { id: string }[] } };
    assert.deepEqual(json.users.map((u) => u.user), ['plain']);
    assert.deepEqual(json.view.tables.map((t) => t.id), ['queue', 'workers', 'users', 'recent']);
    d.emit('synced', report({ user: 'plain', counts: counts(7, 700) }));
    d.emit('hint', 'plain', 'low');
    const metrics = parsePrometheus((await get(port, '/metrics')).body);
    assert.equal(metrics.get('mailferry_replication_messages_copied_total')!.samples[0]!.value, 7);
    assert.equal(metrics.get('mailferry_replication_watcher_events_total')!.samples.find((s) => s.labels.priority === 'low')!.value, 1);
    assert.match((await get(port, '/status.json')).body, /"recent":\[\{"at":\d+,"user":"plain"/);

    const head = await get(port, '/', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.ok(Number(head.headers['content-length']) > 1000);
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await get(port, '/', method);
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.allow, 'GET, HEAD');
    }
    for (const path of ['/nope', '/metrics/', '/status.json/x', '/../etc/passwd', '/index.html']) assert.equal((await get(port, path)).status, 404, path);
    assert.equal((await get(port, `/?q=${'a'.repeat(257)}`)).status, 400);
    assert.equal((await get(port, '/?q=a%0Ab')).status, 400);
    assert.equal((await get(port, `/?x=${'a'.repeat(3000)}`)).status, 414);
    // A name that resolves here is not enough (DNS rebinding): addresses and localhost only.
    const named = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/metrics', headers: { host }, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    for (const host of ['evil.example', 'evil.example:80', '127.0.0.1.nip.io', 'localhost.evil.example']) assert.equal(await named(host), 403, host);
    for (const host of ['localhost', `localhost:${port}`, '127.0.0.1', '[::1]:80', 'status.localhost']) assert.equal(await named(host), 200, host);
    // A header past the bound is refused by the parser, the server stays up.
    const huge = await new Promise<number>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', headers: { 'x-big': 'a'.repeat(20_000) } }, (res) => resolve(res.statusCode ?? 0));
      req.on('error', () => resolve(-1));
      req.end();
    });
    assert.ok(huge === 431 || huge === 400 || huge === -1, `a 20 kB header: ${huge}`);
    assert.equal((await get(port, '/metrics')).status, 200);

    // Requests worked on at once are bounded: past 8 the answer is 503 at once, not a queue.
    let release!: () => void;
    d.hold = new Promise<void>((r) => (release = r));
    await new Promise((r) => setTimeout(r, 600));
    const asked = d.asked;
    const held = Array.from({ length: 8 }, () => get(port, '/status.json'));
    while (server.inProgress < 8) await new Promise((r) => setTimeout(r, 10));
    const refused = await get(port, '/');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    // The eight share one reading of the queue (its three answers).
    assert.equal(d.asked - asked, 3);
    release();
    d.hold = undefined;
    for (const r of await Promise.all(held)) assert.equal(r.status, 200);
    assert.equal(server.inProgress, 0);

    // A failing daemon answer is a 503 naming it, and the server goes on.
    const failing = { answer: () => Promise.reject(new Error('queue locked')), on: () => undefined, off: () => undefined };
    server.attach(failing as never);
    const fail = await get(port, '/');
    assert.equal(fail.status, 503);
    assert.match(fail.body, /queue locked/);
  } finally {
    // A browser's keep-alive connection does not hold close up.
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true });
    await get(port, '/nope', 'GET', agent);
    const started = Date.now();
    await server.close();
    assert.ok(Date.now() - started < 1000, `close took ${Date.now() - started} ms`);
    agent.destroy();
  }
  await assert.rejects(get(port, '/'), /ECONNREFUSED/);
});

test('an address other than loopback: refused without allowRemote (usage or config by origin); with it, served to any host name', async () => {
  const log: string[] = [];
  await assert.rejects(StatusHttpServer.listen({ address: { host: '0.0.0.0', port: 0 }, origin: '--http', allowRemote: false, log: (l) => log.push(l), processMetrics: false }), (err: Error & { exitCode?: number }) => {
    assert.equal(err.exitCode, 64);
    assert.match(err.message, /^--http 0\.0\.0\.0:0: 0\.0\.0\.0 is not a loopback address/);
    return true;
  });
  await assert.rejects(StatusHttpServer.listen({ address: { host: '0.0.0.0', port: 0 }, origin: 'replication_http', allowRemote: false, log: (l) => log.push(l), processMetrics: false }), { exitCode: 78 });
  assert.equal(log.length, 0, 'nothing listened');
  const server = await StatusHttpServer.listen({ address: { host: '0.0.0.0', port: 0 }, origin: '--http', allowRemote: true, log: (l) => log.push(l), processMetrics: false });
  try {
    assert.match(log[0]!, /^status page on http:\/\/0\.0\.0\.0:\d+\/, .*\(no authentication; not a loopback address\)$/);
    server.attach(new FakeDaemon([user('a')]));
    const port = Number(/:(\d+)$/.exec(server.address)![1]);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', headers: { host: 'replicator.example.org' }, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200, 'behind a proxy the page is asked for by the proxy\'s name');
  } finally {
    await server.close();
  }
});
