/**
 * A throwaway Dovecot 2.3 for integration tests: the reference reader/writer of Maildir
 * (via doveadm) and an IMAP peer. Everything lives in one temp dir; no system file is touched.
 *
 * Why it is set up like this:
 * - As root (CI), imap-login refuses to run as root and uid 0 is rejected for mail users.
 *   So the master runs as nobody (setpriv), and the userdb gives every user nobody's uid/gid.
 *   Anything Dovecot must read or write has to belong to nobody: see grantDovecotAccess().
 *   As a non-root user, everything simply runs as that user.
 * - doveadm runs as root with `-u user`. It asks the running daemon's auth-userdb socket
 *   (under base_dir) for the user, then drops to the userdb uid. This goes through the same
 *   userdb as IMAP. The daemon-free route (`USER=x HOME=y` with doveadm itself run as nobody,
 *   without -u) also works, but it skips the userdb, so it is not used here.
 * - The namespace separator is left unset, so Dovecot uses the layout's own: '.' for Maildir++
 *   and '/' for LAYOUT=fs (as MailboxList.separator in src/storage/store.ts does). This also holds
 *   for a per-call mailLocation override. A fixed separator would be wrong for one of the two layouts.
 * - doveadm (even a read) writes Dovecot's index files (dovecot.index*, dovecot.list.index*,
 *   dovecot-uidlist, dovecot-uidvalidity*) into the Maildir it inspects, unless the location says INDEX=MEMORY.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { chmod, chown, lchown, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Dovecot {
  root: string;
  /** IMAP port on 127.0.0.1 (plaintext, LOGIN allowed); 0 when started with imap: false. */
  port: number;
  configPath: string;
  users: Record<string, string>;
  layout: 'maildir++' | 'fs';
  /** Hierarchy separator of the default location: '.' for Maildir++, '/' for LAYOUT=fs. */
  separator: '.' | '/';
  /** The configured mail_location, `maildir:~/Maildir[:LAYOUT=fs]`. */
  mailLocation: string;
  home(user: string): string;
  /**
   * Runs `doveadm -c CONF [-o mail_location=…] ARGS… [-u USER]`. ARGS may start with global
   * options (`-f tab`), then the command. `-u` goes last, which works because doveadm's getopt permutes.
   * `input` is fed to stdin (for `save`). Returns stdout; throws with stderr on non-zero exit.
   */
  doveadm(args: string[], opts?: { user?: string; mailLocation?: string; input?: Buffer | string }): Promise<string>;
  stop(): Promise<void>;
}

/** Who Dovecot runs as; `drop` when we are root and must switch to it. */
interface Identity { uid: number; gid: number; user: string; group: string; drop: boolean }

let identityCache: Identity | undefined;
function identity(): Identity {
  if (identityCache) return identityCache;
  const groupName = (gid: number) =>
    readFileSync('/etc/group', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[2] === String(gid))?.[0];
  if (process.getuid?.() !== 0) {
    const me = userInfo();
    identityCache = { uid: me.uid, gid: me.gid, user: me.username, group: groupName(me.gid) ?? me.username, drop: false };
  } else {
    const f = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((x) => x[0] === 'nobody');
    if (!f) throw new Error('no user "nobody" in /etc/passwd; Dovecot cannot run as root');
    const gid = Number(f[3]);
    identityCache = { uid: Number(f[2]), gid, user: 'nobody', group: groupName(gid) ?? 'nogroup', drop: true };
  }
  return identityCache;
}

/**
 * Call it after our code wrote files Dovecot will read, and before the next doveadm call: root's new 0600 files
 * are unreadable to nobody. Grant the parent when Dovecot itself must create the Maildir. It also adds o+x to
 * every ancestor that lacks it (mkdtemp makes 0700 dirs), so the mail uid can reach `path`. As non-root it does nothing.
 */
export async function grantDovecotAccess(path: string): Promise<void> {
  const id = identity();
  if (!id.drop) return;
  const walk = async (p: string): Promise<void> => {
    const st = await lstat(p);
    if (st.isSymbolicLink()) return lchown(p, id.uid, id.gid);
    await chown(p, id.uid, id.gid);
    await chmod(p, (st.mode & 0o7777) | (st.isDirectory() ? 0o700 : 0o600));
    if (st.isDirectory()) for (const e of await readdir(p)) await walk(join(p, e));
  };
  await walk(path);
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const st = await stat(dir);
    if ((st.mode & 0o001) === 0) await chmod(dir, (st.mode & 0o7777) | 0o001);
    if (dir === dirname(dir)) break;
  }
}

function renderConfig(root: string, port: number, imap: boolean, location: string, id: Identity, extra = ''): string {
  return `# generated by test/support/dovecot.ts
base_dir = ${root}/run
state_dir = ${root}/state
log_path = ${root}/dovecot.log
protocols = ${imap ? 'imap' : 'none'}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = ${id.user}
default_internal_group = ${id.group}
default_login_user = ${id.user}
first_valid_uid = ${id.uid}
last_valid_uid = ${id.uid}
mail_location = ${location}
mail_fsync = never
mail_plugins =
namespace inbox {
  inbox = yes
}
protocol imap {
  mail_max_userip_connections = 200
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${root}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u ${root}/users
  default_fields = uid=${id.uid} gid=${id.gid} home=${root}/home/%u
}
service imap-login {
  chroot =
  user = ${id.user}
  inet_listener imap {
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
${['auth', 'auth-worker', 'stats'].map((s) => `service ${s} {\n  user = ${id.user}\n}\n`).join('')}${extra}`;
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

function run(cmd: string, args: string[], input?: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [], err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => (clearTimeout(timer), reject(e)));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      const why = signal ? `killed by ${signal}` : `exited with ${code}`;
      reject(new Error(`${cmd} ${args.join(' ')} ${why}: ${Buffer.concat(err).toString('utf8').trim()}`));
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/**
 * Masters still running in this process. If the test process dies, even by SIGKILL, the wrapper's
 * `cat` sees EOF on stdin and stops the master. This handler only removes the temp dirs.
 */
const live = new Map<string, ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [root, child] of live) {
      const pid = masterPid(root);
      try { if (pid) process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
      child.kill('SIGKILL');
      try { rmSync(root, { recursive: true, force: true, maxRetries: 3 }); } catch { /* best effort */ }
    }
  });
}

/** Removes temp dirs left by test processes that were killed (their masters are gone already). */
function removeStaleRoots(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = /^mailferry-dovecot-(\d+)-/.exec(name);
    if (!m) continue;
    try { process.kill(Number(m[1]), 0); continue; } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

function masterPid(root: string): number | undefined {
  try { return Number(readFileSync(join(root, 'run', 'master.pid'), 'utf8')) || undefined; } catch { return undefined; }
}

/**
 * On SIGTERM the master stops every service within milliseconds, then sends SIGQUIT to its log
 * process and sleeps a fixed second before exiting (seen with strace). Once only the log
 * process is left, nothing else can happen, so kill the master and skip that second.
 * Without /proc the harness still works, only a second slower.
 */
async function hurryShutdown(pid: number | undefined, dead: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (pid && !dead() && Date.now() < deadline) {
    let kids: string[];
    try { kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean); } catch {
      return; // no /proc children list: let the master take its second
    }
    const comm = (k: string) => { try { return readFileSync(`/proc/${k}/comm`, 'utf8').trim(); } catch { return 'log'; } };
    if (kids.every((k) => comm(k) === 'log')) break;
    await sleep(10);
  }
  if (pid && !dead()) try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
}

// sh stays in front of the master: it passes on the exit status if the master dies (e.g. port
// taken), and when our end of stdin closes (stop() or our death) it stops the master and waits.
// (sh gives background jobs /dev/null as stdin, hence the copy on fd 3.)
const WRAPPER = 'exec 3<&0; dovecot -F -c "$1" 3<&- & d=$!; (cat <&3 >/dev/null; kill -TERM $d 2>/dev/null) & wait $d';

async function imapGreeting(port: number, deadline: number, alive: () => boolean): Promise<void> {
  while (Date.now() < deadline && alive()) {
    const line = await new Promise<string | undefined>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      let buf = '';
      const done = (v: string | undefined) => (sock.destroy(), resolve(v));
      sock.setTimeout(Math.max(100, deadline - Date.now()), () => done(undefined));
      sock.on('error', () => done(undefined));
      // The first client may get "* OK Waiting for authentication process to respond.." first.
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        const hit = buf.split('\r\n').find((l) => l.startsWith('* OK [CAPABILITY'));
        if (hit) done(hit);
      });
    });
    if (line) return;
    await sleep(20);
  }
  throw new Error(`no IMAP greeting on port ${port}`);
}

/** `extraConfig` is appended to the generated dovecot.conf (later settings win), e.g. to load the ACL plugin. */
export async function startDovecot(opts: { users?: string[]; imap?: boolean; layout?: 'maildir++' | 'fs'; extraConfig?: string } = {}): Promise<Dovecot> {
  const id = identity();
  const userNames = opts.users ?? ['alice', 'bob'];
  const imap = opts.imap ?? true;
  const layout = opts.layout ?? 'maildir++';
  const mailLocation = layout === 'fs' ? 'maildir:~/Maildir:LAYOUT=fs' : 'maildir:~/Maildir';
  const users = Object.fromEntries(userNames.map((u) => [u, `${u}-secret`]));
  removeStaleRoots();
  installExitHook();
  const root = await mkdtemp(join(tmpdir(), `mailferry-dovecot-${process.pid}-`));
  const configPath = join(root, 'dovecot.conf');
  const home = (u: string) => join(root, 'home', u);
  try {
    for (const dir of ['run', 'state', ...userNames.map((u) => join('home', u))]) await mkdir(join(root, dir), { recursive: true });
    await writeFile(join(root, 'users'), userNames.map((u) => `${u}:{PLAIN}${users[u]}::::::\n`).join(''));
    for (let attempt = 1; ; attempt++) {
      const port = imap ? await freePort() : 0;
      await writeFile(configPath, renderConfig(root, port, imap, mailLocation, id, opts.extraConfig));
      await grantDovecotAccess(root);
      const argv = ['sh', '-c', WRAPPER, 'sh', configPath];
      const cmd = id.drop ? ['setpriv', `--reuid=${id.uid}`, `--regid=${id.gid}`, '--clear-groups', ...argv] : argv;
      const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      child.stdin!.on('error', () => {}); // EPIPE once sh is gone; exit is handled below
      const exited = new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.once('error', (e) => ((stderr += `${e}\n`), resolve()));
      });
      let dead = false;
      void exited.then(() => (dead = true));
      live.set(root, child);
      const ready = (async () => {
        const deadline = Date.now() + 15_000;
        while (!existsSync(join(root, 'run', 'master.pid'))) {
          if (dead || Date.now() > deadline) throw new Error('master did not start');
          await sleep(10);
        }
        if (imap) await imapGreeting(port, deadline, () => !dead);
        if (userNames[0]) await run('doveadm', ['-c', configPath, 'user', userNames[0]]); // auth answers
      })();
      try {
        await Promise.race([ready, exited.then(() => Promise.reject(new Error('master exited')))]);
      } catch (e) {
        child.stdin!.end();
        await exited;
        live.delete(root);
        const log = await readFile(join(root, 'dovecot.log'), 'utf8').catch(() => '');
        if (/Address already in use/.test(stderr + log) && attempt < 5) continue;
        throw new Error(`dovecot did not start: ${(e as Error).message}\n${stderr}\n${log.slice(-2000)}`);
      }
      // Unreferenced, so a test that forgets stop() still lets node exit (and the exit hook clean up).
      child.unref();
      for (const s of [child.stdin, child.stderr]) (s as unknown as { unref(): void }).unref();
      let stopping: Promise<void> | undefined;
      const d: Dovecot = {
        root, port, configPath, users, layout, mailLocation,
        separator: layout === 'fs' ? '/' : '.',
        home,
        doveadm(args, o = {}) {
          const full = ['-c', configPath];
          if (o.mailLocation !== undefined) full.push('-o', `mail_location=${o.mailLocation}`);
          const rest = [...args];
          if (o.user !== undefined) rest.splice(rest.includes('--') ? rest.indexOf('--') : rest.length, 0, '-u', o.user);
          return run('doveadm', [...full, ...rest], o.input);
        },
        stop() {
          stopping ??= (async () => {
            child.ref();
            const master = masterPid(root);
            child.stdin!.end();
            await Promise.race([exited, hurryShutdown(master, () => dead)]);
            await exited;
            live.delete(root);
            await rm(root, { recursive: true, force: true, maxRetries: 3 });
          })();
          return stopping;
        },
      };
      return d;
    }
  } catch (e) {
    await rm(root, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Parses doveadm output in any of its formatters:
 * - `-f tab`: a header line, then one line per row. Values are not escaped, so only single-line fields are safe.
 * - pager (the default for fetch): `key: value` lines, rows split by a form feed. A multi-line value is
 *   printed as `key:` and then the text. It runs to the end of the row, so ask for such a field last.
 * - flow (the default for mailbox status): `key=value` pairs on one line. Values may contain spaces.
 *   A leading value with no `key=` (doveadm hides the title of e.g. the mailbox) is stored under ''.
 */
export function parseDoveadmTable(out: string): Record<string, string>[] {
  const lines = out.replace(/\n$/, '').split('\n');
  if (out.trim() === '') return [];
  const first = lines[0]!;
  if (/^[\w.-]+:( |$)/.test(first)) {
    return out.split(/\f\n?/).filter((r) => r.trim() !== '').map((rec) => {
      const row: Record<string, string> = {};
      let multi: string | undefined;
      for (const line of rec.replace(/^\n/, '').replace(/\n$/, '').split('\n')) {
        const m = multi === undefined ? /^([\w.-]+):(?: (.*))?$/.exec(line) : null;
        if (m) {
          row[m[1]!] = m[2] ?? '';
          if (m[2] === undefined) multi = m[1]!;
        } else if (multi !== undefined) {
          row[multi] = row[multi] === '' ? line : `${row[multi]}\n${line}`;
        }
      }
      return row;
    });
  }
  if (first.includes('\t') || !first.includes('=')) {
    const header = first.split('\t');
    return lines.slice(1).map((l) => {
      const cells = l.split('\t');
      return Object.fromEntries(header.map((h, i) => [h, cells[i] ?? '']));
    });
  }
  return lines.map((l) => {
    const row: Record<string, string> = {};
    const keys = [...l.matchAll(/(?:^| )([\w.-]+)=/g)];
    const lead = l.slice(0, keys[0]?.index ?? l.length);
    if (lead !== '') row[''] = lead;
    keys.forEach((k, i) => {
      row[k[1]!] = l.slice(k.index! + k[0].length, keys[i + 1]?.index ?? l.length);
    });
    return row;
  });
}

const num = (row: Record<string, string>, k: string): number => {
  const v = Number(row[k]);
  if (!Number.isFinite(v) || row[k] === '') throw new Error(`doveadm gave no number for ${k}: ${JSON.stringify(row)}`);
  return v;
};

/** `guid` is the mailbox GUID: 32 lowercase hex digits. Throws if the mailbox does not exist. */
export async function doveadmMailboxStatus(
  d: Dovecot, user: string, mailLocation: string | undefined, mailbox: string,
): Promise<{ messages: number; uidvalidity: number; uidnext: number; highestmodseq: number; guid: string }> {
  const out = await d.doveadm(['-f', 'tab', 'mailbox', 'status', 'messages uidvalidity uidnext highestmodseq guid', mailbox], { user, mailLocation });
  const row = parseDoveadmTable(out)[0];
  if (!row) throw new Error(`doveadm mailbox status printed nothing for ${mailbox}`);
  return {
    messages: num(row, 'messages'), uidvalidity: num(row, 'uidvalidity'), uidnext: num(row, 'uidnext'),
    highestmodseq: num(row, 'highestmodseq'), guid: row.guid ?? '',
  };
}

/**
 * Messages sorted by UID. For Maildir, `guid` is the file's base name up to ':' (e.g.
 * `1795537504.M149696P6219.vm,S=5216,W=5329`, so ,S= and ,W= are included). `flags` are
 * system flags then keywords, by name, as doveadm prints them, but without \Recent, which is
 * per-session state. `size` is size.physical. Throws if the mailbox does not exist: doveadm
 * fetch itself prints nothing and exits 0 for an unknown mailbox.
 */
export async function doveadmFetch(
  d: Dovecot, user: string, mailLocation: string | undefined, mailbox: string,
): Promise<{ uid: number; guid: string; flags: string[]; size?: number }[]> {
  const out = await d.doveadm(['-f', 'tab', 'fetch', 'uid guid flags size.physical', 'mailbox', mailbox], { user, mailLocation });
  const rows = parseDoveadmTable(out);
  if (rows.length === 0) await doveadmMailboxStatus(d, user, mailLocation, mailbox);
  return rows
    .map((r) => ({ uid: num(r, 'uid'), guid: r.guid ?? '', size: num(r, 'size.physical'),
      flags: (r.flags ?? '').split(' ').filter((f) => f !== '' && f !== '\\Recent') }))
    .sort((a, b) => a.uid - b.uid);
}

/**
 * Names (UTF-8, in the location's separator) of the mailboxes that exist and can be selected, sorted.
 * `doveadm mailbox list` would also print parents that exist only as hierarchy (`Work` of `Work.Q3`),
 * so this asks `mailbox status '*'`, which skips them.
 */
export async function doveadmMailboxList(d: Dovecot, user: string, mailLocation?: string): Promise<string[]> {
  const out = await d.doveadm(['-f', 'tab', 'mailbox', 'status', 'guid', '*'], { user, mailLocation });
  return parseDoveadmTable(out).map((r) => r.mailbox ?? '').sort();
}
