/**
 * `mailferry server` left listening: SIGHUP rotates the secret and the certificate (a broken
 * reload keeps the old ones); an address that keeps failing is slowed down and its failures
 * are counted in the log; connections per address are capped and a silent one is closed at the
 * authentication timeout; an authenticated session is ended when idle or past its time; a
 * second connection for a busy user waits its -l and is refused with 75; SIGTERM lets a
 * running backup finish, turns new clients away, and exits 0.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { corpusMessages } from '../support/corpus.js';
import { authenticate, rawConnect } from './raw-client.js';
import { errorLines, mf, startServer, until, type ServerProcess } from './server-harness.js';
import { fill, makeServerSite, type ServerSite } from './server-site.js';

describe('mailferry server limits, reloads and shutdown', { timeout: 180_000 }, () => {
  let site: ServerSite;
  const servers: ServerProcess[] = [];
  const start = async (settings: string[] = [], args = site.serverArgs) => {
    const s = await startServer(args, { settings: [...site.serverSettings, ...settings] });
    servers.push(s);
    return s;
  };
  const secret = () => readFileSync(site.secretFile).subarray(0, -1);
  const backup = (port: number, user: string, extra: string[] = []) => mf(['backup', ...extra, site.local('src'), site.tcps(port, user)], { settings: site.clientSettings });

  before(async () => {
    site = makeServerSite(['alice', 'bob', 'carol', 'dave']);
    await fill(site, site.local('src'), corpusMessages(300));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    site?.cleanup();
  });

  it('SIGHUP rotates the secret and the certificate; a broken reload keeps both', async () => {
    // The server reads its own copies, so the site's stay as they are.
    const secretFile = join(site.dir, 'hup-secret');
    const cert = join(site.dir, 'hup.crt');
    const key = join(site.dir, 'hup.key');
    copyFileSync(site.secretFile, secretFile);
    copyFileSync(site.certs.serverCert, cert);
    copyFileSync(site.certs.serverKey, key);
    const s = await start([], ['--listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key, '--secret-file', secretFile, 'maildir:~/Maildir:LAYOUT=fs']);
    const newSecret = join(site.dir, 'new-secret');
    writeFileSync(newSecret, 'a brand new secret for this site\n', { mode: 0o600 });
    copyFileSync(newSecret, secretFile);
    let mark = s.lines.length;
    s.child.kill('SIGHUP');
    await s.waitForLine(/reloaded: TLS certificate, secret/, { from: mark });
    let r = await backup(s.port, 'alice');
    assert.equal(r.code, 77, 'the old secret is refused');
    r = await mf(['backup', site.local('src'), site.tcps(s.port, 'alice')], { settings: [`server_secret_file=${newSecret}`] });
    assert.equal(r.code, 0, r.stderr);

    copyFileSync(site.certs.rogueServerCert, cert);
    copyFileSync(site.certs.rogueServerKey, key);
    mark = s.lines.length;
    s.child.kill('SIGHUP');
    await s.waitForLine(/reloaded: /, { from: mark });
    r = await mf(['backup', site.local('src'), site.tcps(s.port, 'alice')], { settings: [`server_secret_file=${newSecret}`] });
    assert.equal(r.code, 78, 'the new certificate is served');
    r = await mf(['backup', site.local('src'), site.tcps(s.port, 'alice', `cafile=${site.certs.rogueCa}`)], { settings: [`server_secret_file=${newSecret}`] });
    assert.equal(r.code, 0, r.stderr);

    // A key that does not match, and an empty secret: nothing changes.
    copyFileSync(site.certs.serverKey, key);
    writeFileSync(secretFile, '\n');
    mark = s.lines.length;
    s.child.kill('SIGHUP');
    assert.match(await s.waitForLine(/reload failed/, { from: mark }), /still using the previous certificate and secret: .*hup-secret: the secret on its first line is empty/);
    r = await mf(['backup', site.local('src'), site.tcps(s.port, 'alice', `cafile=${site.certs.rogueCa}`)], { settings: [`server_secret_file=${newSecret}`] });
    assert.equal(r.code, 0, r.stderr);
  });

  it('an address that keeps failing waits longer each time; the log counts its failures; a success forgets them', async () => {
    const s = await start(['server_auth_failures=2', 'server_auth_backoff=2']);
    const wrong = Buffer.from('not the secret at all, but long enough');
    const attempt = async (key: Buffer, localAddress = '127.0.0.5') => {
      const t0 = Date.now();
      const sock = await rawConnect(s.port, { ca: site.certs.ca, localAddress });
      const ex = await authenticate(sock, 'alice', key);
      sock.destroy();
      return { ok: ex.result.ok, ms: Date.now() - t0 };
    };
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await attempt(wrong));
    assert.ok(results.every((r) => !r.ok));
    assert.ok(results[2]!.ms >= 1000 && results[3]!.ms >= 2000, `the third waited a second, the fourth two (the cap): ${results.map((r) => r.ms).join(', ')} ms`);
    assert.equal((await attempt(secret(), '127.0.0.6')).ok, true, 'another address gets in');
    const good = await attempt(secret());
    assert.ok(good.ok && good.ms >= 2000, 'a right secret from the slowed address waits too, then succeeds');
    assert.equal((await attempt(wrong)).ok, false);
    // What the log says of each: the wait, this address's failures, all failures.
    const lines = () => s.sessionLines().filter((l) => / peer=127\.0\.0\.[56]:/.test(l));
    await until(() => lines().length >= 7, 'seven log lines', 10_000);
    // In the order the connections came (a session's line comes when it ends).
    const byId = lines().sort((a, b) => Number(/session (\d+)/.exec(a)![1]) - Number(/session (\d+)/.exec(b)![1]));
    const shown = byId.map((l) => [/ backoff=([0-9.]+)s/.exec(l)?.[1] ?? '-', /auth_failures=(\d+) auth_failures_total=(\d+)/.exec(l)?.slice(1).join('/') ?? 'ok']);
    assert.deepEqual(shown, [['-', '1/1'], ['-', '2/2'], ['1.000', '3/3'], ['2.000', '4/4'], ['-', 'ok'], ['2.000', 'ok'], ['-', '1/5']]);
    const mark = s.lines.length;
    s.child.kill('SIGHUP');
    assert.match(await s.waitForLine(/^mailferry server: status: /, { from: mark }), /auth_failures_total=5 slowed_addresses=0 /);
  });

  it('connections per address are capped; silent ones are closed at the authentication timeout', async () => {
    const s = await start(['server_max_connections_per_address=3', 'server_auth_timeout=3']);
    const idle = await Promise.all([1, 2, 3].map(() => rawConnect(s.port, { localAddress: '127.0.0.7' })));
    const closed = idle.map((c) => new Promise<number>((r) => c.on('close', () => r(Date.now()))));
    const t0 = Date.now();
    const fourth = await rawConnect(s.port, { localAddress: '127.0.0.7' });
    await new Promise<void>((r) => fourth.on('close', () => r()));
    assert.ok(Date.now() - t0 < 1500, 'the fourth is closed at once');
    const ends = await Promise.all(closed);
    for (const e of ends) assert.ok(e - t0 >= 2500 && e - t0 < 8000, `closed after about three seconds (${e - t0} ms)`);
    // A connection's line is written once the server has closed it: a moment after the client saw that.
    await until(() => s.sessionLines().filter((l) => / peer=127\.0\.0\.7:/.test(l)).length >= 4, 'four log lines', 10_000);
    const lines = s.sessionLines().filter((l) => / peer=127\.0\.0\.7:/.test(l));
    assert.equal(lines.filter((l) => /result="refused: 3 connections from this address already \(server_max_connections_per_address\)"/.test(l)).length, 1);
    assert.equal(lines.filter((l) => /result="dropped: no authentication within 3 seconds \(server_auth_timeout\)"/.test(l)).length, 3);
  });

  it('an authenticated session that goes quiet is ended; so is one past its time', async () => {
    const idle = await start(['server_idle_timeout=1']);
    const long = await start(['server_session_max_time=1', 'server_idle_timeout=60']);
    for (const [s, why] of [[idle, /result="ended: idle for 1 seconds \(server_idle_timeout\)"/], [long, /result="ended: the session time limit of 1 seconds \(server_session_max_time\)"/]] as const) {
      const sock = await rawConnect(s.port, { ca: site.certs.ca });
      const ex = await authenticate(sock, 'bob', secret());
      assert.equal(ex.result.ok, true);
      const t0 = Date.now();
      await new Promise<void>((r) => sock.on('close', () => r()).resume());
      assert.ok(Date.now() - t0 < 8000);
      assert.match(await s.waitForLine(/user=bob wait=[0-9.]+s result=/), why);
    }
  });

  it("a second connection for a busy user waits its -l, then is refused with 75; the user's next turn works", async () => {
    const s = await start();
    const holder = await rawConnect(s.port, { ca: site.certs.ca });
    assert.equal((await authenticate(holder, 'carol', secret())).result.ok, true);
    const t0 = Date.now();
    let r = await backup(s.port, 'carol', ['-l', '1']);
    assert.equal(r.code, 75, r.stderr);
    assert.ok(Date.now() - t0 >= 1000);
    assert.deepEqual(errorLines(r), [`mailferry: error: server tcps:127.0.0.1:${s.port}: user carol is being served to another connection; waited 1 seconds (-l): try again later`]);
    const waiting = backup(s.port, 'carol', ['-l', '30']);
    await s.waitForLine(/user=carol result="refused: user carol is being served/);
    setTimeout(() => holder.destroy(), 500);
    r = await waiting;
    assert.equal(r.code, 0, r.stderr);
    await s.waitForLine(/user=carol wait=[0-9.]+s result=ok .* saved=300 /);
  });

  it('SIGTERM lets a running backup finish, turns new clients away, and exits 0', async () => {
    await fill(site, site.local('big'), corpusMessages(1500).slice(300));
    const s = await start();
    const running = mf(['backup', site.local('big'), site.tcps(s.port, 'dave')], { settings: site.clientSettings });
    const cur = join(site.home('dave'), 'Maildir', 'cur');
    await until(() => existsSync(cur) && readdirSync(cur).length >= 50, "the backup to be under way");
    s.child.kill('SIGTERM');
    await s.waitForLine(/SIGTERM: no new connections; waiting for 1 session\(s\) to finish/);
    const late = await backup(s.port, 'bob');
    assert.equal(late.code, 75, late.stderr);
    assert.match(errorLines(late)[0]!, /connection refused$/);
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await s.exited, { code: 0, signal: null });
    assert.match(s.sessionLines().at(-1)!, /user=dave wait=[0-9.]+s result=ok exit=0 .* saved=1200 /);
    assert.match(s.lines.at(-1)!.text, /stopped$/);
    // Read as files: the server is gone, and its user's index is not root's to open.
    const files = (readdirSync(join(site.home('dave'), 'Maildir'), { recursive: true }) as string[]).filter((p) => /(^|\/)cur\/[^/]+$/.test(p));
    assert.equal(files.length, 1200);
  });
});
