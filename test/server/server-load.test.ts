/**
 * `mailferry server` under load: 20 clients on 20 users at once (backups and two-way syncs),
 * each account getting exactly its own mail; and 5 clients syncing with the same user at once:
 * all finish, their sessions never overlap (the per-user turn holds), and after one more round
 * every side holds every message once.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { corpusMessages } from '../support/corpus.js';
import { mf, startServer, until, type ServerProcess } from './server-harness.js';
import { fill, mailferryView, makeServerSite, type ServerSite } from './server-site.js';

type View = Awaited<ReturnType<typeof mailferryView>>;

/** The bodies a view holds, by MD5, each once per copy held. */
function held(view: View): string[] {
  return Object.values(view).flat().map((m) => m.md5).sort();
}

function md5s(bodies: Buffer[]): string[] {
  return bodies.map((b) => createHash('md5').update(b).digest('hex')).sort();
}

describe('mailferry server under load', { timeout: 300_000 }, () => {
  const USERS = Array.from({ length: 20 }, (_, i) => `load${String(i).padStart(2, '0')}`);
  let site: ServerSite;
  let server: ServerProcess;
  let mail: Buffer[];

  before(async () => {
    site = makeServerSite([...USERS, 'shared']);
    server = await startServer(site.serverArgs, { settings: [...site.serverSettings, 'server_max_connections_per_address=40'] });
    mail = corpusMessages(400);
  });
  after(async () => {
    await server?.stop();
    site?.cleanup();
  });

  it('20 clients on 20 users at once: all finish, each account holds exactly its own mail', async () => {
    await Promise.all(USERS.map((u, i) => fill(site, site.local(u), mail.slice(i * 12, i * 12 + 12))));
    const runs = await Promise.all(USERS.map((u, i) => mf([i % 2 === 0 ? 'backup' : 'sync', site.local(u), site.tcps(server.port, u)], { settings: site.clientSettings })));
    runs.forEach((r, i) => assert.equal(r.code, 0, `${USERS[i]}: ${r.stderr}`));
    for (const [i, u] of USERS.entries()) {
      const far = await mailferryView(site, site.tcps(server.port, u));
      assert.deepEqual(far, await mailferryView(site, site.local(u)), u);
      assert.deepEqual(held(far), md5s(mail.slice(i * 12, i * 12 + 12)), `${u} holds its own 12 messages and nothing else`);
    }
    // Each user's run and each view: 40 sessions, every one ok (the last line may still be on its way).
    const good = () => server.sessionLines().filter((l) => /user=load\d+ wait=[0-9.]+s result=ok exit=0 /.test(l)).length;
    await until(() => good() >= 40, '40 good sessions', 10_000);
    assert.equal(server.sessionLines().filter((l) => / user=load\d+ /.test(l)).length, 40);
  });

  it('5 clients syncing with one user at once: all finish, one at a time; another round leaves every side with every message once', async () => {
    const clients = [0, 1, 2, 3, 4].map((i) => `shared-client-${i}`);
    const slices = clients.map((_, i) => mail.slice(300 + i * 15, 315 + i * 15));
    await Promise.all(clients.map((c, i) => fill(site, site.local(c), slices[i]!)));
    const mark = server.lines.length;
    const runs = await Promise.all(clients.map((c) => mf(['sync', '-l', '120', site.local(c), site.tcps(server.port, 'shared')], { settings: site.clientSettings })));
    runs.forEach((r, i) => assert.equal(r.code, 0, `${clients[i]}: ${r.stderr}`));

    // The server's turns: each session starts (after its wait) once the one before it ended.
    const sessions = server.lines.slice(mark).filter((l) => / user=shared wait=/.test(l.text)).map((l) => {
      const time = Number(/ time=([0-9.]+)s$/.exec(l.text)![1]) * 1000;
      const wait = Number(/ wait=([0-9.]+)s /.exec(l.text)![1]) * 1000;
      return { start: l.at - time + wait, end: l.at };
    });
    assert.equal(sessions.length, 5);
    sessions.sort((a, b) => a.start - b.start);
    for (let i = 1; i < sessions.length; i++) {
      // The log line is written just after the turn passes on; 150 ms covers that, an overlap is a whole sync.
      assert.ok(sessions[i]!.start >= sessions[i - 1]!.end - 150, `session ${i} began ${Math.round(sessions[i - 1]!.end - sessions[i]!.start)} ms before the one before it ended`);
    }

    const everything = md5s(slices.flat());
    assert.deepEqual(held(await mailferryView(site, site.tcps(server.port, 'shared'))), everything, 'after one round the server holds all 75 messages, each once');
    for (const c of clients) {
      const r = await mf(['sync', site.local(c), site.tcps(server.port, 'shared')], { settings: site.clientSettings });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(held(await mailferryView(site, site.local(c))), everything, `${c} holds all 75, each once`);
    }
    // A later client's sync may renumber on the server what an earlier one saw; the last saw the end.
    const far = await mailferryView(site, site.tcps(server.port, 'shared'));
    assert.deepEqual(held(far), everything);
    assert.deepEqual(await mailferryView(site, site.local(clients.at(-1)!)), far);
  });
});
