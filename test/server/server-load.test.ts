/**
 * `mailferry server` under load: 20 clients on 20 users at once (backups and two-way syncs),
 * each account getting exactly its own mail; and 5 clients syncing with the same user at once:
 * all finish, their sessions never overlap (the per-user turn holds), and after one more round
 * every side holds every message once.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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

/** MD5s of the message files under a Maildir's cur/ directories. */
function filesOf(root: string): string[] {
  const files = (readdirSync(root, { recursive: true }) as string[]).filter((p) => /(^|\/)cur\/[^/]+$/.test(p));
  return md5s(files.map((f) => readFileSync(join(root, f))));
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
    // The messages as files in each account (read, never opened as a store: that is the session's).
    for (const [i, u] of USERS.entries()) {
      assert.deepEqual(filesOf(join(site.home(u), 'Maildir')), md5s(mail.slice(i * 12, i * 12 + 12)), `${u} holds its own 12 messages and nothing else`);
    }
    for (const u of [USERS[0]!, USERS[1]!]) assert.deepEqual(await mailferryView(site, site.tcps(server.port, u)), await mailferryView(site, site.local(u)), u);
    // Every run and view one session, each ok (the last line may still be on its way).
    const good = () => server.sessionLines().filter((l) => /user=load\d+ wait=[0-9.]+s result=ok exit=0 /.test(l)).length;
    await until(() => good() >= 22, '22 good sessions', 10_000);
    assert.equal(server.sessionLines().filter((l) => / user=load\d+ /.test(l)).length, 22);
  });

  it('5 clients syncing with one user at once: all finish, one at a time; another round leaves every side with every message once', async () => {
    const clients = [0, 1, 2, 3, 4].map((i) => `shared-client-${i}`);
    const slices = clients.map((_, i) => mail.slice(300 + i * 15, 315 + i * 15));
    await Promise.all(clients.map((c, i) => fill(site, site.local(c), slices[i]!)));
    const mark = server.lines.length;
    // A session is a process of the server's, started once the user's turn came: count them.
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, childrenOf(server.pid).length)), 10);
    let runs;
    try {
      runs = await Promise.all(clients.map((c) => mf(['sync', '-l', '120', site.local(c), site.tcps(server.port, 'shared')], { settings: site.clientSettings })));
    } finally {
      clearInterval(sampler);
    }
    runs.forEach((r, i) => assert.equal(r.code, 0, `${clients[i]}: ${r.stderr}`));
    assert.equal(most, 1, 'never two sessions of one user at once');
    await until(() => server.lines.slice(mark).filter((l) => / user=shared wait=/.test(l.text)).length >= 5, 'five log lines', 10_000);
    const waits = server.lines.slice(mark).map((l) => / user=shared wait=([0-9.]+)s result=ok /.exec(l.text)?.[1]).filter((w) => w !== undefined).map(Number);
    assert.equal(waits.length, 5);
    assert.ok(waits.filter((w) => w > 0.1).length >= 3, `the later ones waited their turn: ${waits.join(', ')} s`);

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

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Sessions only: the spare the server keeps started (`mailferry spare`) serves no one.
      if (Number(fields[1]) === pid && fields[0] !== 'Z' && readFileSync(`/proc/${d}/comm`, 'utf8').startsWith('mailferry sess')) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
