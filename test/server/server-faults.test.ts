/**
 * Interruptions of a two-way sync over tcps:, each in the middle of copying 500 messages to
 * the server: the client killed (SIGKILL), the server killed and started again, the connection
 * cut between them. The server ends the session and frees the user; the next run completes,
 * and both sides then hold every message exactly once, alike.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { corpusMessages } from '../support/corpus.js';
import { mf, startServer, until, type ServerProcess } from './server-harness.js';
import { fill, mailferryView, makeServerSite, type ServerSite } from './server-site.js';

describe('mailferry server: syncs interrupted mid-way finish on the next run', { timeout: 300_000 }, () => {
  let site: ServerSite;
  let server: ServerProcess;
  let bodies: Buffer[];
  const extra: ServerProcess[] = [];
  const sync = (local: string, far: string) => mf(['sync', '-l', '30', local, far], { settings: site.clientSettings });

  before(async () => {
    site = makeServerSite(['killed', 'restarted', 'cut']);
    server = await startServer(site.serverArgs, { settings: site.serverSettings });
    bodies = corpusMessages(500);
  });
  after(async () => {
    await Promise.all([server?.stop(), ...extra.map((s) => s.stop())]);
    site?.cleanup();
  });

  /** Messages in the user's server Maildir, counted as files (never opened as root). */
  function onServer(user: string): number {
    const root = join(site.home(user), 'Maildir');
    if (!existsSync(root)) return 0;
    return (readdirSync(root, { recursive: true }) as string[]).filter((p) => /(^|\/)cur\/[^/]+$/.test(p)).length;
  }

  async function assertExact(local: string, user: string, port: number): Promise<void> {
    const want = bodies.map((b) => createHash('md5').update(b).digest('hex')).sort();
    const far = await mailferryView(site, site.tcps(port, user));
    assert.deepEqual(Object.values(far).flat().map((m) => m.md5).sort(), want, 'the server holds every message once');
    assert.deepEqual(await mailferryView(site, local), far, 'the client holds the same, at the same UIDs, with the same flags');
  }

  it('the client killed: the session ends, the user is free, the next run completes exactly', async () => {
    const local = site.local('killed');
    await fill(site, local, bodies);
    const first = sync(local, site.tcps(server.port, 'killed'));
    await until(() => onServer('killed') >= 100, 'messages on the server');
    first.child.kill('SIGKILL');
    assert.equal((await first).code, 137);
    assert.match(await server.waitForLine(/ user=killed wait=\S+ result=/), / in=\d+ out=\d+ /);
    assert.ok(onServer('killed') < 500, 'it was killed halfway');
    const t0 = Date.now();
    const r = await sync(local, site.tcps(server.port, 'killed'));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - t0 < 25_000, 'no wait for a turn the dead client held');
    await assertExact(local, 'killed', server.port);
  });

  it('the server killed and started again: its session processes end with it; the next run completes exactly', async () => {
    const s = await startServer(site.serverArgs, { settings: site.serverSettings });
    const port = s.port;
    const local = site.local('restarted');
    await fill(site, local, bodies);
    const first = sync(local, site.tcps(port, 'restarted'));
    await until(() => onServer('restarted') >= 100, 'messages on the server');
    const sessions = childrenOf(s.pid);
    assert.ok(sessions.length >= 1, 'a session process runs');
    s.child.kill('SIGKILL');
    const r1 = await first;
    assert.equal(r1.code, 75, r1.stderr);
    await until(() => sessions.every(gone), 'the orphaned session processes to end', 15_000);
    const again = await startServer(site.serverArgs.map((a) => (a === '127.0.0.1:0' ? `127.0.0.1:${port}` : a)), { settings: site.serverSettings });
    extra.push(again);
    const r = await sync(local, site.tcps(port, 'restarted'));
    assert.equal(r.code, 0, r.stderr);
    await assertExact(local, 'restarted', port);
  });

  it('the connection cut between client and server: 75, then the next run completes exactly', async () => {
    const cut = await cuttableProxy(server.port);
    const local = site.local('cut');
    await fill(site, local, bodies);
    const first = sync(local, site.tcps(cut.port, 'cut'));
    await until(() => onServer('cut') >= 100, 'messages on the server');
    cut.cut();
    const r1 = await first;
    assert.equal(r1.code, 75, r1.stderr);
    assert.match(r1.stderr, /mailferry: error: server tcps:127\.0\.0\.1:\d+: /);
    await server.waitForLine(/ user=cut wait=\S+ result=/);
    cut.close();
    const r = await sync(local, site.tcps(server.port, 'cut'));
    assert.equal(r.code, 0, r.stderr);
    await assertExact(local, 'cut', server.port);
  });
});

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      // Sessions only: the spare the server keeps started (`mailferry spare`) serves no one.
      if (ppid === pid && readFileSync(`/proc/${d}/comm`, 'utf8').startsWith('mailferry sess')) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Gone, or a zombie nobody reaps (PID 1 here reaps no orphans). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** A TCP relay to the server whose connections the test can cut at once, both ends. */
function cuttableProxy(target: number): Promise<{ port: number; cut(): void; close(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((c) => {
    const s = connect(target, '127.0.0.1');
    for (const x of [c, s]) {
      sockets.add(x);
      x.on('error', () => {});
      x.on('close', () => sockets.delete(x));
    }
    c.pipe(s);
    s.pipe(c);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as { port: number }).port,
        cut: () => {
          for (const x of sockets) x.resetAndDestroy();
        },
        close: () => server.close(),
      }),
    ),
  );
}
