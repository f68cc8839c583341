/**
 * A throwaway PostgreSQL for tests: Debian's server binaries (/usr/lib/postgresql/N/bin), a
 * cluster made by initdb in a temp dir, listening on a free loopback TCP port with password
 * (scram) authentication, stopped and removed by stop().
 *
 * Why it is set up like this:
 * - initdb and postgres refuse to run as root. As root (CI) both run as the `postgres` system
 *   account when there is one (the Debian package makes it), else as nobody, through setpriv;
 *   the temp dir is handed to that account. As a non-root user they run as that user.
 * - A missing PostgreSQL is an error, not a skip: scripts/setup-and-test.sh installs it, so a
 *   test that cannot find it must fail loudly rather than pass having tested nothing.
 * - The socket directory is the temp dir, so nothing is written to /var/run/postgresql, and
 *   fsync is off: the cluster lives only as long as the test file.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export interface Postgres {
  /** postgresql://USER:PASSWORD@127.0.0.1:PORT/postgres, the superuser's. */
  uri: string;
  port: number;
  user: string;
  password: string;
  /** The same server, another database (and optionally another role). */
  uriFor(database: string, user?: string, password?: string): string;
  /** Runs SQL as the superuser on the `postgres` database (several statements allowed without values). */
  query(sql: string, values?: unknown[]): Promise<pg.QueryResult>;
  stop(): Promise<void>;
}

export const PG_SUPERUSER = 'mailferry_test';

function binDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))) : [];
  if (versions.length === 0) {
    throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (install the postgresql package: scripts/setup-and-test.sh does)');
  }
  versions.sort((a, b) => Number(b) - Number(a));
  return join(base, versions[0]!, 'bin');
}

/** Who the server runs as: ourselves, or (as root) postgres or nobody. */
function serverAccount(): { uid: number; gid: number; drop: boolean } {
  if (process.getuid?.() !== 0) return { uid: process.getuid!(), gid: process.getgid!(), drop: false };
  const accounts = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':'));
  const f = accounts.find((a) => a[0] === 'postgres') ?? accounts.find((a) => a[0] === 'nobody');
  if (!f) throw new Error('running as root and neither a postgres nor a nobody account exists to run PostgreSQL as');
  return { uid: Number(f[2]), gid: Number(f[3]), drop: true };
}

function asAccount(argv: string[], account: { uid: number; gid: number; drop: boolean }): string[] {
  return account.drop ? ['setpriv', `--reuid=${account.uid}`, `--regid=${account.gid}`, '--clear-groups', ...argv] : argv;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function startPostgres(): Promise<Postgres> {
  const bin = binDir();
  const account = serverAccount();
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-pg-'));
  const data = join(dir, 'data');
  const password = `pw-${process.pid}-${Date.now().toString(36)}`;
  writeFileSync(join(dir, 'pwfile'), `${password}\n`);
  if (account.drop) {
    chownSync(dir, account.uid, account.gid);
    chownSync(join(dir, 'pwfile'), account.uid, account.gid);
  }
  const initdb = asAccount([join(bin, 'initdb'), '-D', data, '-U', PG_SUPERUSER, `--pwfile=${join(dir, 'pwfile')}`, '--auth-host=scram-sha-256', '--auth-local=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'], account);
  const init = spawnSync(initdb[0]!, initdb.slice(1), { encoding: 'utf8', cwd: dir, timeout: 60_000 });
  rmSync(join(dir, 'pwfile'), { force: true });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${init.status ?? init.signal ?? init.error}): ${init.stderr || init.error}`);
  }

  let child: ChildProcess | undefined;
  let port = 0;
  let log = '';
  for (let attempt = 0; attempt < 3 && !child; attempt++) {
    port = await freePort();
    const argv = [join(bin, 'postgres'), '-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir, '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=40', '-c', 'shared_buffers=16MB'];
    const cmd = asAccount(argv, account);
    const proc = spawn(cmd[0]!, cmd.slice(1), { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    log = '';
    proc.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    if (await ready(port, password, exited)) child = proc;
    else {
      proc.kill('SIGKILL');
      await exited;
      // Another process took the port between the probe and the bind: try another.
      if (!/could not bind|Address already in use/i.test(log)) break;
    }
  }
  if (!child) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${log.trim().split('\n').slice(-5).join(' | ')}`);
  }
  const server = child;
  const killOnExit = () => server.kill('SIGKILL');
  process.on('exit', killOnExit);

  const uriFor = (database: string, user = PG_SUPERUSER, pw = password) =>
    `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(pw)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  const uri = uriFor('postgres');
  const client = new pg.Client({ connectionString: uri });
  await client.connect();

  let stopped = false;
  return {
    uri,
    port,
    user: PG_SUPERUSER,
    password,
    uriFor,
    query: (sql, values) => client.query(sql, values),
    async stop() {
      if (stopped) return;
      stopped = true;
      await client.end().catch(() => {});
      const gone = new Promise<void>((resolve) => (server.exitCode !== null || server.signalCode !== null ? resolve() : server.once('exit', () => resolve())));
      // SIGINT is the fast shutdown: open sessions are ended, nothing is waited for.
      server.kill('SIGINT');
      const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until the server answers a query as the superuser, or the process ended, or 30 s passed. */
async function ready(port: number, password: string, exited: Promise<void>): Promise<boolean> {
  let dead = false;
  void exited.then(() => (dead = true));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !dead) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: PG_SUPERUSER, password, database: 'postgres', connectionTimeoutMillis: 2000 });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      return true;
    } catch {
      await c.end().catch(() => {});
      await sleep(100);
    }
  }
  return false;
}
