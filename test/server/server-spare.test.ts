/**
 * The session process `mailferry server` keeps started ahead of need: one waits as soon as the
 * server listens, the next connection's session is that very process, a new one is started
 * after it, a spare that died is replaced without the client noticing, and a stopping server
 * leaves none behind.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { corpusMessages } from '../support/corpus.js';
import { mf, startServer, until, type ServerProcess } from './server-harness.js';
import { fill, makeServerSite, type ServerSite } from './server-site.js';

/** The server's children by what ps shows: `mailferry spare` or `mailferry session` (15 bytes of it in comm). */
function children(pid: number): { pid: number; title: string }[] {
  const out: { pid: number; title: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === pid && f[0] !== 'Z') out.push({ pid: Number(d), title: readFileSync(`/proc/${d}/comm`, 'utf8').trim() });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const spares = (pid: number) => children(pid).filter((c) => c.title === 'mailferry spare');

describe('mailferry server: a session process started ahead of need', { timeout: 120_000 }, () => {
  let site: ServerSite;
  let server: ServerProcess;
  const backup = () => mf(['backup', site.local('src'), site.tcps(server.port, 'alice')], { settings: site.clientSettings });

  before(async () => {
    site = makeServerSite(['alice']);
    await fill(site, site.local('src'), corpusMessages(30));
    server = await startServer(site.serverArgs, { settings: site.serverSettings });
  });
  after(async () => {
    await server?.stop();
    site?.cleanup();
  });

  it('one spare waits once the server listens; the next session is that process, and a new spare follows', async () => {
    await until(() => spares(server.pid).length === 1, 'a spare', 10_000);
    const first = spares(server.pid)[0]!.pid;
    const run = backup();
    // The session is the spare's process, now serving.
    let served = false;
    await until(() => (served = children(server.pid).some((c) => c.pid === first && c.title.startsWith('mailferry sess'))) || run.child.exitCode !== null, 'the spare serving', 20_000);
    assert.ok(served, 'the session ran in the spare');
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(await server.waitForLine(/ user=alice .*result=ok/), /result=ok/);
    await until(() => spares(server.pid).length === 1 && spares(server.pid)[0]!.pid !== first, 'a new spare', 10_000);
    assert.equal(children(server.pid).length, 1, 'the spare alone once the session is over');
  });

  it('a spare that died is replaced: the client is served as ever', async () => {
    await until(() => spares(server.pid).length === 1, 'a spare', 10_000);
    const dead = spares(server.pid)[0]!.pid;
    process.kill(dead, 'SIGKILL');
    await until(() => !children(server.pid).some((c) => c.pid === dead), 'the spare gone', 10_000);
    const mark = server.lines.length;
    const r = await backup();
    assert.equal(r.code, 0, r.stderr);
    assert.match(await server.waitForLine(/ user=alice .*result=/, { from: mark }), /result=ok/);
    await until(() => spares(server.pid).length === 1, 'a spare again', 10_000);
  });

  it('SIGTERM: the server exits 0 and its spare with it', async () => {
    await until(() => spares(server.pid).length === 1, 'a spare', 10_000);
    const spare = spares(server.pid)[0]!.pid;
    assert.deepEqual(await server.stop(), { code: 0, signal: null });
    await until(() => {
      try {
        return readFileSync(`/proc/${spare}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
      } catch {
        return true;
      }
    }, 'the spare to end', 10_000);
  });
});
