/**
 * A throwaway OpenSSH server on 127.0.0.1 for the remote-location tests: a real `ssh` talks to a
 * real `sshd`, which runs the far command (usually mailferry's `dsync-server`) with the login
 * user's uid. Host and client keys are made per start; nothing outside the harness's own directory
 * is written, except /run/sshd (sshd's privilege separation directory), the directory the harness
 * directories live in and, for `login: 'made'`, one system user that is created once and kept.
 *
 * Why it is set up like this:
 * - StrictModes stays on, as on a real server. sshd then wants every directory from
 *   authorized_keys up to / (or up to the user's home) owned by root or the user and not group-
 *   or world-writable: /tmp (1777) fails that, so as root the harness lives under /run, whose
 *   ancestors are all root's 0755. A non-root run cannot write there; it uses the temp dir with
 *   StrictModes off (sshd then only logs in the user running it).
 * - authorized_keys belongs to root and is world-readable: sshd reads it with the login user's
 *   uid, and root's ownership passes StrictModes for any user.
 * - `login: 'made'` is a system user with /bin/sh and a non-locked password field ('*'): with
 *   UsePAM off, sshd refuses accounts whose password starts with '!', as useradd leaves them.
 *   Its home is the harness's parent directory, so the far command starts somewhere that exists.
 * - ssh gets -F /dev/null and IdentitiesOnly, so neither the machine's ssh_config nor an agent
 *   or ~/.ssh key takes part, and a host key other than the one made here fails verification.
 * - Far commands get PATH (a `mailferry` wrapper of this checkout, then the directory of the
 *   running node), XDG_STATE_HOME in the harness directory, so the far side never writes the
 *   login user's real state, and a marker variable by which stop() finds them even once their
 *   session is gone. SHLVL=1 keeps bash (root's shell) from sourcing ~/.bashrc, as it does for
 *   commands run by sshd: a machine's rc file slowed every connection by half a second here, and
 *   could prepend its own PATH or print into the protocol stream.
 * - A watchdog shell per harness cleans up after a test process that dies without stop(), even
 *   by SIGKILL, which no exit hook would see.
 * - PID 1 here reaps no orphans, so processes are killed leaves first: a far command while its
 *   sshd can still reap it, then the sessions while the listener can.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
/** mailferry's built CLI in this checkout (`npm test` builds it first). */
export const CLI_MAIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');
const SSHD = '/usr/sbin/sshd';
/** Where harness directories live as root; also the home of the made user. */
const ROOT_PARENT = '/run/mailferry-test-sshd';
/** The system user `login: 'made'` logs in as. */
export const MADE_USER = 'mailferry-test';
const MARKER = 'MAILFERRY_TEST_SSHD';

export interface SshdOptions {
  /**
   * Who ssh logs in as: 'self' is the user running the tests (root in CI, allowed by
   * PermitRootLogin prohibit-password); 'made' is a system user the harness creates (root only).
   */
  login?: 'self' | 'made';
  /** More environment for far commands (sshd's SetEnv); it may override PATH or XDG_STATE_HOME. */
  env?: Record<string, string>;
}

export interface FarProcess {
  pid: number;
  cmdline: string[];
}

/** One ssh connection as seen on the server: its sshd processes and what they run. */
export interface SshSession {
  /** The per-connection sshd, a child of the listener. */
  pid: number;
  /** Every sshd process of the connection, the per-connection one first. */
  sshd: number[];
  /** The command and its descendants. */
  far: FarProcess[];
}

export interface Sshd {
  host: '127.0.0.1';
  port: number;
  login: string;
  uid: number;
  gid: number;
  /** The harness's directory (removed by stop()). */
  dir: string;
  /** The client's private key and its known_hosts file holding the server's host key. */
  clientKey: string;
  knownHosts: string;
  /** XDG_STATE_HOME of far commands, writable by the login user. */
  farStateDir: string;
  /** ssh's options, without the destination. */
  sshOptions: string[];
  /** `ssh OPTIONS -l LOGIN 127.0.0.1`: append the far command. */
  sshCommand: string[];
  /**
   * A dsync_remote_cmd running `inner` through this sshd: `ssh OPTIONS -l%{login} %{host} INNER`,
   * so the login and host come from the `remote:[login@]host` location, as with the default.
   * None of the harness's paths has a space or a '%', so splitting it on spaces gives ssh's argv back.
   */
  remoteCmdSetting(inner: string): string;
  /** `node <repo>/dist/cli/main.js ARGS…` quoted for the far shell; `%{…}` is left for the setting's expansion. */
  cli(args: string[]): string;
  /** The far `mailferry` on PATH, a wrapper running CLI_MAIN with node. */
  mailferryWrapper: string;
  pid: number;
  /** sshd's log (LogLevel VERBOSE on stderr), the last 256 KiB. */
  log(): string;
  /**
   * Current connections; with `match`, those running a far process whose command line contains it.
   * `match` is never looked for in the shell sshd starts the command with (`SHELL -c COMMAND`), which
   * holds the whole command until it execs it: only in the processes the command runs.
   */
  sessions(match?: string): SshSession[];
  /** Waits until a connection runs a far process whose command line contains `match` (default 10 s). */
  waitForSession(match?: string, timeoutMs?: number): Promise<SshSession>;
  /**
   * Cuts connections now: SIGKILLs their sshd processes, so the client sees the connection drop
   * (ssh exits 255) and the far command loses its stdin and stdout but is not killed. Returns how many.
   */
  killSession(match?: string): number;
  /** SIGKILLs the far processes whose command line contains `match` (every one without). Returns how many. */
  killFar(match?: string): number;
  /** Kills every far command and session, then sshd, and removes the directory. */
  stop(): Promise<void>;
}

/** Quotes an argument for a POSIX shell, leaving plain words (and `%{var}`) as they are. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./{}-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
  start: string;
}

function readProc(pid: number): Proc | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may hold spaces and parentheses; the fields after it are plain.
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const f = stat.slice(close + 2).split(' ');
  return { pid, ppid: Number(f[1]), comm, state: f[0]!, start: f[19]! };
}

function processTable(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return [];
  }
}

function hasMarker(pid: number, value: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`${MARKER}=${value}`);
  } catch {
    return false;
  }
}

/** Alive and the same process (a recycled pid has another start time); a zombie counts as gone. */
function alive(p: Proc): boolean {
  const now = readProc(p.pid);
  return !!now && now.start === p.start && now.state !== 'Z';
}

function descendants(root: number, table: Proc[]): Proc[] {
  const kids = new Map<number, Proc[]>();
  for (const p of table) kids.set(p.ppid, [...(kids.get(p.ppid) ?? []), p]);
  const out: Proc[] = [];
  const walk = (pid: number) => {
    for (const k of kids.get(pid) ?? []) {
      out.push(k);
      walk(k.pid);
    }
  };
  walk(root);
  return out;
}

function kill(p: Proc, signal: NodeJS.Signals): void {
  if (!alive(p)) return;
  try {
    process.kill(p.pid, signal);
  } catch {
    // gone meanwhile
  }
}

async function gone(procs: Proc[], ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (procs.some(alive)) {
    if (Date.now() > until) return false;
    await sleep(10);
  }
  return true;
}

async function keygen(path: string, comment: string): Promise<void> {
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

interface Account {
  name: string;
  uid: number;
  gid: number;
}

function passwdEntry(name: string): Account | undefined {
  const f = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((x) => x[0] === name);
  return f ? { name, uid: Number(f[2]), gid: Number(f[3]) } : undefined;
}

/** Creates MADE_USER once; concurrent test files may race, so "already there" and a busy lock are fine. */
async function ensureMadeUser(): Promise<Account> {
  for (let attempt = 0; ; attempt++) {
    const found = passwdEntry(MADE_USER);
    if (found) return found;
    try {
      await execFileP('useradd', [
        '--system', '--user-group', '--no-create-home', '--home-dir', ROOT_PARENT,
        '--shell', '/bin/sh', '--password', '*', '--comment', 'mailferry tests over ssh', MADE_USER,
      ]);
    } catch (err) {
      // 9: the name was taken meanwhile; 10: /etc/passwd is locked by another useradd.
      const code = (err as { code?: number }).code;
      if ((code !== 9 && code !== 10) || attempt >= 50) {
        throw new Error(`cannot create the user ${MADE_USER} for the ssh tests: ${(err as Error).message}`);
      }
      await sleep(100);
    }
  }
}

function setEnvLine(env: Record<string, string>): string {
  const items = Object.entries(env).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || /["\n\\]/.test(v)) throw new Error(`sshd SetEnv cannot carry ${k}=${v}`);
    return /\s/.test(v) ? `"${k}=${v}"` : `${k}=${v}`;
  });
  return `SetEnv ${items.join(' ')}`;
}

/**
 * Stands by until the test process is gone (its stdin closes, whether the process exited, forgot
 * stop() or was killed), then kills the far commands, sessions and listener of one harness and
 * removes its directory. Arguments: listener pid, directory, marker variable.
 */
const WATCHDOG = `trap '' INT TERM HUP
cat >/dev/null
listener=$1 dir=$2 marker=$3
owned=no
[ "$(cat /proc/$listener/comm 2>/dev/null)" = sshd ] && owned=yes
for f in /proc/[0-9]*; do
  p=\${f#/proc/}
  if grep -qzx "$marker=$dir" $f/environ 2>/dev/null; then kill -9 $p; continue; fi
  [ $owned = yes ] || continue
  line=$(cat $f/stat 2>/dev/null) || continue
  set -- \${line##*) }
  [ "$2" = "$listener" ] && kill -9 $p
done
[ $owned = yes ] && kill -9 $listener
rm -rf "$dir"
`;

export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install openssh-server (scripts/setup-and-test.sh does)`);
  const root = process.getuid?.() === 0;
  const loginKind = opts.login ?? 'self';
  if (loginKind === 'made' && !root) throw new Error("startSshd({ login: 'made' }) needs root");

  let parent = tmpdir();
  if (root) {
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    await mkdir(ROOT_PARENT, { recursive: true, mode: 0o755 });
    const st = await stat(ROOT_PARENT);
    if (st.uid !== 0) throw new Error(`${ROOT_PARENT} must belong to root for sshd's StrictModes`);
    if (st.mode & 0o022) await chmod(ROOT_PARENT, 0o755);
    parent = ROOT_PARENT;
  }
  const account: Account = loginKind === 'made'
    ? await ensureMadeUser()
    : { name: userInfo().username, uid: process.getuid!(), gid: process.getgid!() };

  const dir = await mkdtemp(join(parent, root ? 'sshd-' : 'mailferry-test-sshd-'));
  // The paths go unquoted into sshd_config and into a space-split dsync_remote_cmd.
  if (/[\s%'"\\#]/.test(dir)) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the temp directory ${dir} has a character sshd_config or dsync_remote_cmd would misread`);
  }
  await chmod(dir, 0o755);
  const hostKey = join(dir, 'host_ed25519_key');
  const clientKey = join(dir, 'client_ed25519_key');
  const knownHosts = join(dir, 'known_hosts');
  const keysDir = join(dir, 'authorized_keys');
  const binDir = join(dir, 'bin');
  const farStateDir = join(dir, 'state');
  const configPath = join(dir, 'sshd_config');
  await Promise.all([
    keygen(hostKey, 'mailferry-test-host'),
    keygen(clientKey, 'mailferry-test-client'),
    mkdir(keysDir, { mode: 0o755 }),
    mkdir(binDir, { mode: 0o755 }),
    mkdir(farStateDir, { mode: 0o700 }),
  ]);
  if (root) await chown(farStateDir, account.uid, account.gid);
  const authorized = join(keysDir, account.name);
  await writeFile(authorized, await readFile(`${clientKey}.pub`), { mode: 0o644 });
  await chmod(authorized, 0o644);
  const mailferryWrapper = join(binDir, 'mailferry');
  await writeFile(mailferryWrapper, `#!/bin/sh\nexec node ${shellQuote(CLI_MAIN)} "$@"\n`, { mode: 0o755 });

  const farEnv: Record<string, string> = {
    PATH: [binDir, dirname(process.execPath), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'),
    XDG_STATE_HOME: farStateDir,
    SHLVL: '1',
    ...opts.env,
    [MARKER]: dir,
  };
  const config = `# generated by test/support/sshd.ts
ListenAddress 127.0.0.1
HostKey ${hostKey}
PidFile ${join(dir, 'sshd.pid')}
AuthorizedKeysFile ${keysDir}/%u
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitRootLogin prohibit-password
AllowUsers ${account.name}
UsePAM no
StrictModes ${root ? 'yes' : 'no'}
PermitUserEnvironment no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
LoginGraceTime 10
MaxStartups 100
MaxSessions 20
LogLevel VERBOSE
${setEnvLine(farEnv)}
`;
  await writeFile(configPath, config, { mode: 0o644 });
  const hostPub = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');

  let child: ChildProcess | undefined;
  let port = 0;
  let log = '';
  let exited!: Promise<void>;
  for (let attempt = 0; !child; attempt++) {
    port = await freePort();
    log = '';
    const c = spawn(SSHD, ['-D', '-e', '-f', configPath, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.setEncoding('utf8');
    c.stderr!.on('data', (s: string) => {
      log = (log + s).slice(-256 * 1024);
    });
    const e = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    const ready = (async () => {
      const until = Date.now() + 10_000;
      while (!log.includes(`Server listening on 127.0.0.1 port ${port}.`)) {
        if (c.exitCode !== null || c.signalCode !== null) return false;
        if (Date.now() > until) {
          c.kill('SIGKILL');
          rmSync(dir, { recursive: true, force: true });
          throw new Error(`sshd did not listen within 10 s:\n${log}`);
        }
        await sleep(5);
      }
      return true;
    })();
    if (await ready) {
      child = c;
      exited = e;
    } else {
      await e;
      // Another process took the port between freePort() and sshd's bind: try another.
      if (!/Address already in use|Cannot bind any address/.test(log) || attempt >= 5) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`sshd exited at start (config ${configPath}):\n${log}`);
      }
    }
  }
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostPub}\n`, { mode: 0o644 });
  // Unreferenced, so a test that forgets stop() still lets node exit (and the watchdog clean up).
  child.unref();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  const listener = readProc(child.pid!)!;
  const watchdog = spawn('sh', ['-c', WATCHDOG, 'sh', String(listener.pid), dir, MARKER], { stdio: ['pipe', 'ignore', 'ignore'] });
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void }).unref?.();

  const sshOptions = [
    '-F', '/dev/null', '-i', clientKey, '-p', String(port),
    '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR',
    '-o', 'ConnectTimeout=10', '-o', 'ControlPath=none',
  ];

  const matches = (p: Proc, table: Proc[], match: string | undefined): boolean => {
    if (match === undefined) return true;
    const argv = cmdline(p.pid);
    if (argv[1] === '-c' && table.find((q) => q.pid === p.ppid)?.comm === 'sshd') return false;
    return argv.join(' ').includes(match);
  };
  const farProcs = (table: Proc[], match?: string): Proc[] =>
    table.filter((p) => p.state !== 'Z' && hasMarker(p.pid, dir) && matches(p, table, match));

  const sessions = (match?: string): SshSession[] => {
    const table = processTable();
    const out: SshSession[] = [];
    for (const s of table.filter((p) => p.ppid === listener.pid && p.state !== 'Z')) {
      const tree = descendants(s.pid, table).filter((p) => p.state !== 'Z');
      const farTree = tree.filter((p) => p.comm !== 'sshd');
      if (match !== undefined && !farTree.some((p) => matches(p, table, match))) continue;
      const far = farTree.map((p) => ({ pid: p.pid, cmdline: cmdline(p.pid) }));
      out.push({ pid: s.pid, sshd: [s.pid, ...tree.filter((p) => p.comm === 'sshd').map((p) => p.pid)], far });
    }
    return out;
  };

  let stopping: Promise<void> | undefined;
  const sshd: Sshd = {
    host: '127.0.0.1',
    port,
    login: account.name,
    uid: account.uid,
    gid: account.gid,
    dir,
    clientKey,
    knownHosts,
    farStateDir,
    sshOptions,
    sshCommand: ['ssh', ...sshOptions, '-l', account.name, '127.0.0.1'],
    remoteCmdSetting: (inner) => ['ssh', ...sshOptions, '-l%{login}', '%{host}', inner].join(' '),
    cli: (args) => ['node', shellQuote(CLI_MAIN), ...args.map(shellQuote)].join(' '),
    mailferryWrapper,
    pid: listener.pid,
    log: () => log,
    sessions,
    async waitForSession(match, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = sessions(match).find((s) => s.far.length > 0);
        if (found) return found;
        if (Date.now() > until) throw new Error(`no ssh session running ${match ?? 'a command'} within ${timeoutMs} ms`);
        await sleep(10);
      }
    },
    killSession(match) {
      const table = processTable();
      const found = sessions(match);
      for (const s of found) {
        for (const pid of [...s.sshd].reverse()) {
          const p = table.find((x) => x.pid === pid);
          if (p) kill(p, 'SIGKILL');
        }
      }
      return found.length;
    },
    killFar(match) {
      const procs = farProcs(processTable(), match);
      for (const p of procs) kill(p, 'SIGKILL');
      return procs.length;
    },
    stop() {
      stopping ??= (async () => {
        watchdog.kill('SIGKILL');
        // Leaves first, each while its parent can still reap it (see the top of the file).
        const far = farProcs(processTable());
        for (const p of far) kill(p, 'SIGKILL');
        await gone(far, 2000);
        const sessionProcs = descendants(listener.pid, processTable()).reverse();
        for (const p of sessionProcs) kill(p, 'SIGKILL');
        await gone(sessionProcs, 2000);
        kill(listener, 'SIGTERM');
        const t = setTimeout(() => kill(listener, 'SIGKILL'), 2000);
        await exited;
        clearTimeout(t);
        // A session accepted just before the listener went away.
        for (const p of farProcs(processTable())) kill(p, 'SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
  return sshd;
}
