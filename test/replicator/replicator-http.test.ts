/**
 * `replicator --http`: a real daemon of the built CLI over users with local replicas (one of
 * them named `<script>alert(1)</script>`, one whose far replica is down), its status page in
 * headless Chromium (Debian's package, driven by playwright-core; never a downloaded browser):
 * the page loads, shows the users, the queue and the failure, searches, shows the hostile name
 * as text with no script of its own running, and refreshes itself after a new sync without
 * being reloaded; a screenshot is kept with the test output. /metrics is read with a strict
 * parser of the Prometheus text format, and its counters move with the syncs. The refusals:
 * unknown paths 404, POST 405, an address that is not loopback, bad addresses, a port in use.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { cli } from '../cli/cli-child.js';
import { parsePrometheus, type Family } from './replicator-http-prometheus.js';
import { deliver, GID, give, makeReplicaSite, startReplicator, UID, until, type ReplicaSite } from './replica-site.js';

const sites: ReplicaSite[] = [];
after(() => {
  for (const s of sites) s.stop();
});

const HOSTILE = '<script>alert(1)</script>';

/** The system's Chromium: the test fails, never skips, without it. */
function chromiumPath(): string {
  const given = process.env.MAILFERRY_CHROMIUM;
  if (given) {
    assert.ok(existsSync(given), `MAILFERRY_CHROMIUM=${given}: no such file; the status page is tested in Chromium (Debian's chromium package: apt-get install chromium; scripts/setup-and-test.sh installs it)`);
    return given;
  }
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (existsSync(p)) return p;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    assert.fail("Chromium is not installed: the status page is tested in it. Install Debian's chromium package (apt-get install chromium; scripts/setup-and-test.sh does) or set MAILFERRY_CHROMIUM to a Chromium binary");
  }
}

function sample(families: Map<string, Family>, name: string, labels: Record<string, string> = {}, sampleName = name): number {
  const f = families.get(name);
  assert.ok(f, `family ${name} in /metrics`);
  const s = f.samples.find((x) => x.name === sampleName && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  assert.ok(s, `${sampleName}${JSON.stringify(labels)} in /metrics`);
  return s.value;
}

async function metrics(base: string): Promise<Map<string, Family>> {
  const res = await fetch(`${base}metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

/** Polls `done` until it holds; throws with `describe()` after `ms`. */
async function eventually(done: () => Promise<boolean>, ms: number, describe: () => Promise<string>): Promise<void> {
  const start = Date.now();
  while (!(await done())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${await describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function artifactsDir(): string {
  const dir = process.env.MAILFERRY_TEST_ARTIFACTS ?? join(tmpdir(), 'mailferry-test-artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
}

test('the status page in headless Chromium and /metrics of a running replicator', { timeout: 90_000 }, async (t) => {
  const executablePath = chromiumPath();
  const s = makeReplicaSite({ users: 4, prefix: 'web', messages: 2 });
  sites.push(s);
  // A user whose name is markup, with a replica of its own, and one whose far replica is down.
  const hostileHome = join(s.dir, 'home', 'hostile');
  const downHome = join(s.dir, 'home', 'down');
  for (const home of [hostileHome, downHome]) {
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(home, 'Maildir', sub), { recursive: true });
    for (const p of [home, join(home, 'Maildir'), ...['cur', 'new', 'tmp'].map((sub) => join(home, 'Maildir', sub))]) give(p);
  }
  deliver(join(hostileHome, 'Maildir'), '', 'hostile');
  const down = join(s.dir, 'ssh-down.sh');
  writeFileSync(down, '#!/bin/sh\necho "ssh: connect to host replica.invalid port 22: Connection refused" >&2\nexit 255\n');
  chmodSync(down, 0o755);
  appendFileSync(
    s.passwdFile,
    `${HOSTILE}:{PLAIN}pw:${UID}:${GID}::${hostileHome}::userdb_mail=maildir:~/Maildir userdb_mail_replica=maildir:${s.dir}/replica/hostile\n` +
      `down:{PLAIN}pw:${UID}:${GID}::${downHome}::userdb_mail=maildir:~/Maildir userdb_mail_replica=remote:replica.invalid\n`,
  );
  const everyone = [...s.users.map((u) => u.name), HOSTILE, 'down'];

  const r = startReplicator(s, { replication_check_interval: '1h', replication_failure_backoff: '1h', replication_max_conns: '2', dsync_remote_cmd: down }, ['--http', '127.0.0.1:0']);
  let browser: Browser | undefined;
  try {
    const line = await r.waitFor(/status page on (http:\/\/127\.0\.0\.1:\d+\/)/, 15_000);
    const base = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(line.text)![1]!;
    assert.match(line.text, /no authentication/);
    await until(() => everyone.every((u) => r.syncs(u).length > 0), 30_000, () => r.log());
    assert.match(r.syncs('down')[0]!.text, /failed/);

    // /metrics, strictly parsed.
    const first = await metrics(base);
    for (const [name, type] of [
      ['mailferry_replication_syncs_total', 'counter'],
      ['mailferry_replication_sync_duration_seconds', 'histogram'],
      ['mailferry_replication_lag_seconds', 'gauge'],
      ['mailferry_replication_queue_depth', 'gauge'],
      ['mailferry_replication_messages_copied_total', 'counter'],
      ['mailferry_replication_bytes_copied_total', 'counter'],
      ['mailferry_replication_watcher_events_total', 'counter'],
      ['mailferry_replication_syncs_running', 'gauge'],
      ['mailferry_replication_users', 'gauge'],
      ['process_cpu_seconds_total', 'counter'],
      ['nodejs_eventloop_lag_seconds', 'gauge'],
    ] as const) {
      assert.equal(first.get(name)?.type, type, `${name} is a ${type}`);
    }
    const ok1 = sample(first, 'mailferry_replication_syncs_total', { result: 'ok' });
    assert.ok(ok1 >= 5, `5 users synced ok, counted ${ok1}`);
    assert.ok(sample(first, 'mailferry_replication_syncs_total', { result: 'failed' }) >= 1);
    const seeded = s.users.reduce((n, u) => n + s.delivered.get(u.name)!.size, 0) + 1;
    assert.ok(sample(first, 'mailferry_replication_messages_copied_total') >= seeded, `at least the ${seeded} seeded messages counted as copied`);
    assert.ok(sample(first, 'mailferry_replication_bytes_copied_total') > seeded * 100);
    const syncsCounted = first.get('mailferry_replication_syncs_total')!.samples.reduce((n, x) => n + x.value, 0);
    const durations = sample(first, 'mailferry_replication_sync_duration_seconds', {}, 'mailferry_replication_sync_duration_seconds_count');
    const histogramCount = first.get('mailferry_replication_sync_duration_seconds')!.samples.filter((x) => x.name.endsWith('_count')).reduce((n, x) => n + x.value, 0);
    assert.ok(durations > 0);
    assert.equal(histogramCount, syncsCounted, 'one duration observed per sync');
    assert.equal(sample(first, 'mailferry_replication_users', { watch: 'watched' }) + sample(first, 'mailferry_replication_users', { watch: 'polled' }), everyone.length);
    assert.equal(sample(first, 'mailferry_replication_queue_depth', { priority: 'failed_waiting' }), 1, 'the user whose replica is down waits out its back-off');
    for (const p of ['sync', 'high', 'low', 'failed', 'full']) sample(first, 'mailferry_replication_queue_depth', { priority: p });

    // The routes' refusals.
    const notFound = await fetch(`${base}nope`);
    assert.equal(notFound.status, 404);
    const post = await fetch(base, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const head = await fetch(`${base}metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    assert.equal((await fetch(`${base}?q=${'x'.repeat(300)}`)).status, 400);
    const json = (await (await fetch(`${base}status.json`)).json()) as { users: { user: string; condition: string; lastError?: string }[] };
    assert.deepEqual(json.users.map((u) => u.user).sort(), [...everyone].sort());
    const downRow = json.users.find((u) => u.user === 'down')!;
    assert.equal(downRow.condition, 'failing');
    assert.match(downRow.lastError ?? '', /Connection refused/);

    // The page, in Chromium.
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], timeout: 30_000 });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const dialogs: string[] = [];
    const problems: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    // A script the Content-Security-Policy blocked is a console error.
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    const res = await page.goto(base);
    assert.equal(res?.status(), 200);
    assert.equal(await page.title(), 'mailferry replicator');
    const userCells = () => page.$$eval('#users tbody tr', (rows) => rows.map((r) => r.querySelector('td')?.textContent ?? ''));
    assert.deepEqual((await userCells()).sort(), [...everyone].sort());
    // The hostile name is text in its cell, not an element, and no script but the page's own is there.
    assert.equal(await page.$$eval('#users tbody td', (cells) => cells.filter((c) => c.textContent === '<script>alert(1)</script>').length), 1);
    assert.equal(await page.$$eval('script', (s) => s.length), 1);
    const queue = Object.fromEntries(await page.$$eval('#queue tbody tr', (rows) => rows.map((r) => [r.cells[0]!.textContent, r.cells[1]!.textContent])));
    assert.equal(queue['users in all'], String(everyone.length));
    assert.equal(queue['failed, waiting (back-off)'], '1');
    assert.equal(await page.$$eval('#workers tbody tr', (rows) => rows.length), 2);
    const downCells = await page.$$eval('#users tbody tr.failing td', (cells) => cells.map((c) => c.textContent ?? ''));
    assert.equal(downCells[0], 'down');
    assert.ok(downCells.some((c) => /Connection refused/.test(c)), `the failure shown: ${downCells.join(' | ')}`);

    // The search filters as one types, and keeps filtering across refreshes.
    const shows = (names: string[]) => eventually(async () => JSON.stringify(await userCells()) === JSON.stringify(names), 10_000, async () => `users shown: ${JSON.stringify(await userCells())}, wanted ${JSON.stringify(names)}`);
    await page.fill('#q', 'web2');
    await shows(['web2']);
    assert.match(page.url(), /\?q=web2$/);
    await page.fill('#q', '*script*');
    await shows([HOSTILE]);
    await page.fill('#q', 'nobody-here');
    await page.waitForSelector('#users td.empty', { timeout: 10_000 });
    // A search in the address, as a bookmark holds it, is served filtered.
    await page.goto(`${base}?q=WEB1`);
    assert.deepEqual(await userCells(), ['web1']);
    await page.goto(base);

    // It refreshes itself: a delivery's sync appears without the test reloading the page.
    await page.evaluate('window.stillHere = true');
    const before = r.syncs('web3').length;
    deliver(s.users[2]!.source, '', 'web-refresh');
    await until(() => r.syncs('web3').length > before, 15_000, () => r.log());
    // web3's first sync copied its two seeded messages: one message is the new sync.
    const recent = () => page.$$eval('#recent tbody tr', (rows) => rows.map((row) => [...row.querySelectorAll('td')].map((c) => c.textContent ?? '')));
    await eventually(async () => (await recent()).some((c) => c[1] === 'web3' && c[6]!.startsWith('1 message (')), 10_000, async () => `recent syncs shown: ${JSON.stringify(await recent())}`);
    t.diagnostic(`the page showed the new sync ${Date.now() - r.syncs('web3')[before]!.at} ms after its log line (refreshed every 2 s)`);
    assert.equal(await page.evaluate('window.stillHere'), true, 'the page was not reloaded');
    assert.ok(Number(await page.getAttribute('body', 'data-refreshes')) >= 1);

    const shot = join(artifactsDir(), `replicator-status-page-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`status page screenshot: ${shot}`);

    assert.deepEqual(dialogs, [], 'no script of a user name ran');
    assert.deepEqual(problems, []);

    // The counters moved with the new sync and the watcher's hint.
    const second = await metrics(base);
    assert.ok(sample(second, 'mailferry_replication_syncs_total', { result: 'ok' }) > ok1);
    assert.ok(sample(second, 'mailferry_replication_messages_copied_total') > sample(first, 'mailferry_replication_messages_copied_total'));
    assert.ok(sample(second, 'mailferry_replication_watcher_events_total', { priority: 'high' }) >= 1);

    // A second replicator on the same state directory listens, is refused the queue (75) and
    // lets its port go; the first one's page goes on.
    const other = startReplicator(s, {}, ['--http', '127.0.0.1:0']);
    const otherBase = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec((await other.waitFor(/status page on http/, 15_000)).text)![1]!;
    assert.equal(await other.exited, 75, other.log());
    assert.match(other.log(), /another mailferry replicator/);
    await assert.rejects(fetch(`${otherBase}metrics`), 'its port is closed');
    assert.equal((await fetch(`${base}status.json`)).status, 200);
  } finally {
    await browser?.close();
    r.child.kill('SIGTERM');
    const code = await r.exited;
    assert.equal(code, 0, r.log());
  }
});

test('--http refusals: an address that is not loopback, bad addresses, a port in use, a bad replication_http', { timeout: 60_000 }, async () => {
  const s = makeReplicaSite({ users: 1, prefix: 'refuse', messages: 1 });
  sites.push(s);
  const run = (extra: string[], settings: Record<string, string> = {}) => cli([...s.args(settings), 'replicator', '--socket', s.socket, ...extra]);

  const remote = run(['--http', '0.0.0.0:0']);
  assert.equal(remote.code, 64, remote.stderr);
  assert.match(remote.stderr, /^mailferry: error: --http 0\.0\.0\.0:0: 0\.0\.0\.0 is not a loopback address, and the status page has no authentication .*--http-allow-remote/m);
  assert.equal(remote.stderr.trim().split('\n').length, 1, remote.stderr);
  const fromSetting = run([], { replication_http: '0.0.0.0:0' });
  assert.equal(fromSetting.code, 78, fromSetting.stderr);
  assert.match(fromSetting.stderr, /replication_http 0\.0\.0\.0:0: .*not a loopback address/);

  for (const bad of ['localhost', '127.0.0.1:99999', '::1:80', '[::1]', '127.0.0.1:', 'a b:80', '127.0.0.1:80x']) {
    const r = run(['--http', bad]);
    assert.equal(r.code, 64, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^mailferry: error: invalid --http '${bad.replace(/[[\]().*+?]/g, '\\$&')}': .*expected HOST:PORT`, 'm'), bad);
  }
  const badOption = run([], { replication_http: 'nowhere' });
  assert.equal(badOption.code, 64, badOption.stderr);
  assert.match(badOption.stderr, /-o replication_http=nowhere: invalid replication_http = "nowhere": 'nowhere' has no port/);
  const file = join(s.dir, 'mailferry.toml');
  writeFileSync(file, 'replication_http = "127.0.0.1"\n');
  const args = s.args();
  args[args.indexOf('-c') + 1] = file;
  const badFile = cli([...args, 'replicator', '--socket', s.socket]);
  assert.equal(badFile.code, 78, badFile.stderr);
  assert.match(badFile.stderr, /mailferry\.toml.*invalid replication_http = "127\.0\.0\.1": '127\.0\.0\.1' has no port/);

  // A port another process holds: a temporary failure, and no sync ran.
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const port = (holder.address() as { port: number }).port;
  try {
    const busy = run(['--http', `127.0.0.1:${port}`]);
    assert.equal(busy.code, 75, busy.stderr);
    assert.match(busy.stderr, new RegExp(`--http 127\\.0\\.0\\.1:${port}: cannot listen: the address is in use`));
    assert.doesNotMatch(busy.stderr, /sync/);
    assert.ok(!existsSync(join(s.dir, 'replica', 'refuse1')), 'no replica was made');
  } finally {
    holder.close();
  }
});
