/**
 * A mail site for replicator tests: a passwd-file userdb of users with Maildirs (Maildir++ and
 * LAYOUT=fs, folders with spaces, unicode and dots) and a mail_replica each; mail delivered and
 * changed on disk the way a delivery agent and a mail client do it; both sides of each pair
 * read straight from disk (Message-ID, folder, flag letters), so the judge shares no code with
 * mailferry; and the built CLI's `replicator` as a real daemon process with its log timed line
 * by line. As root every user is nobody (65534) and the files the test writes are given to it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { encodeMutf7 } from '../../src/model/mutf7.js';
import { CLI, cli, type CliResult } from '../cli/cli-child.js';

export const ROOT = process.getuid?.() === 0;
export const UID = ROOT ? 65534 : process.getuid!();
export const GID = ROOT ? 65534 : process.getgid!();

export interface ReplicaUser {
  name: string;
  layout: 'maildir++' | 'fs';
  /** The user's Maildir and the replica's root. */
  source: string;
  replica: string;
  /** Folder directories relative to the root ('' is INBOX). */
  folders: string[];
}

function folderDir(layout: ReplicaUser['layout'], parts: string[]): string {
  const enc = parts.map(encodeMutf7);
  return layout === 'fs' ? join(...enc) : `.${enc.join('.')}`;
}

const FOLDERS: Record<ReplicaUser['layout'], string[][]> = {
  'maildir++': [['Work Stuff'], ['Entwürfe'], ['Lists', 'dev']],
  fs: [['Archiv', 'v1.2 notes'], ['日本語'], ['A & B']],
};

export function give(path: string): void {
  if (ROOT) chownSync(path, UID, GID);
}

function makeMaildir(root: string, folders: string[]): void {
  for (const f of folders) {
    for (const sub of ['cur', 'new', 'tmp']) {
      mkdirSync(join(root, f, sub), { recursive: true });
    }
  }
  // Every directory on the way belongs to the user.
  const fix = (p: string) => {
    give(p);
    for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) fix(join(p, e.name));
  };
  fix(root);
}

let serial = 0;

/** Delivers one message as a delivery agent does (tmp/, then a rename into new/); returns its Message-ID. */
export function deliver(root: string, folder: string, tag: string, body = ''): string {
  const n = serial++;
  const id = `<${tag}.${n}.${process.pid}@replicator.test>`;
  const name = `${1700000000 + n}.M${n}P${process.pid}.replicatortest`;
  const text = `From: a@example.com\nTo: b@example.com\nSubject: ${tag} ${n}\nMessage-ID: ${id}\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nmessage ${n}\n${body}`;
  const tmp = join(root, folder, 'tmp', name);
  writeFileSync(tmp, text);
  give(tmp);
  renameSync(tmp, join(root, folder, 'new', name));
  return id;
}

/** Message files of one folder, as a mail client lists them. */
export function filesIn(root: string, folder: string): string[] {
  return ['new', 'cur'].flatMap((sub) => {
    try {
      return readdirSync(join(root, folder, sub)).sort().map((f) => join(root, folder, sub, f));
    } catch {
      return [];
    }
  });
}

export function messageIdOf(path: string): string | undefined {
  try {
    return /^Message-ID: (.*)$/im.exec(readFileSync(path, 'utf8'))?.[1];
  } catch {
    return undefined; // renamed or removed meanwhile
  }
}

/** System flag letters of a message file's name (new/ holds none). */
export function flagsOf(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const info = /:2,([A-Za-z]*)$/.exec(base)?.[1] ?? '';
  return [...info].filter((c) => c >= 'A' && c <= 'Z').sort().join('');
}

/** A mail client's flag change: the file renamed into cur/ with other letters. False when it was gone. */
export function setFlags(path: string, letters: string): boolean {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dir = path.slice(0, path.lastIndexOf('/'));
  const folderDir = dir.slice(0, dir.lastIndexOf('/'));
  try {
    renameSync(path, join(folderDir, 'cur', `${base.split(':')[0]}:2,${letters}`));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export function expunge(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export interface Holdings {
  /** Message-ID -> "folder flags". */
  byId: Map<string, string>;
  /** Message-IDs held more than once. */
  twice: string[];
}

/** Every message of a Maildir tree (either layout), read from disk. */
export function holdings(root: string): Holdings {
  const out: Holdings = { byId: new Map(), twice: [] };
  const visit = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const folder = relative(root, dir);
    if (entries.some((e) => e.name === 'cur' && e.isDirectory())) {
      for (const path of filesIn(root, folder)) {
        const id = messageIdOf(path) ?? `? ${path}`;
        if (out.byId.has(id)) out.twice.push(id);
        out.byId.set(id, `${folder || 'INBOX'} ${flagsOf(path)}`);
      }
    }
    for (const e of entries) if (e.isDirectory() && !['cur', 'new', 'tmp'].includes(e.name)) visit(join(dir, e.name));
  };
  visit(root);
  return out;
}

/** Where the two sides of a pair differ, as readable lines (empty: they agree). */
export function differences(a: Holdings, b: Holdings): string[] {
  const ids = new Set([...a.byId.keys(), ...b.byId.keys()]);
  const out = [...ids].filter((id) => a.byId.get(id) !== b.byId.get(id)).map((id) => `${id}: source ${a.byId.get(id) ?? '-'}, replica ${b.byId.get(id) ?? '-'}`);
  for (const id of a.twice) out.push(`${id} twice in the source`);
  for (const id of b.twice) out.push(`${id} twice in the replica`);
  return out;
}

export interface ReplicaSite {
  dir: string;
  passwdFile: string;
  users: ReplicaUser[];
  /** Delivered Message-IDs by user. */
  delivered: Map<string, Set<string>>;
  /** The arguments every CLI call of this site starts with: no config file, the userdb, the state directory. */
  args(settings?: Record<string, string>): string[];
  socket: string;
  /** Adds a user to the passwd-file (for reload tests). */
  addUser(name: string, messages: number): ReplicaUser;
  stop(): void;
}

export function makeReplicaSite(opts: { users: number; messages?: number; prefix?: string }): ReplicaSite {
  const dir = mkdtempSync(join(tmpdir(), 'mf-repl-'));
  chmodSync(dir, 0o711);
  const prefix = opts.prefix ?? 'u';
  const users: ReplicaUser[] = [];
  const delivered = new Map<string, Set<string>>();
  mkdirSync(join(dir, 'home'), { mode: 0o711 });
  mkdirSync(join(dir, 'replica'), { mode: 0o711 });
  give(join(dir, 'replica'));
  const passwdFile = join(dir, 'users');
  writeFileSync(passwdFile, '# replicator test users\n');
  const add = (name: string, i: number, messages: number): ReplicaUser => {
    const layout: ReplicaUser['layout'] = i % 4 === 3 ? 'fs' : 'maildir++';
    const home = join(dir, 'home', name);
    mkdirSync(home, { mode: 0o700 });
    give(home);
    const folders = ['', ...FOLDERS[layout].slice(0, 1 + (i % 3)).map((p) => folderDir(layout, p))];
    const source = join(home, 'Maildir');
    makeMaildir(source, folders);
    const ids = new Set<string>();
    for (let k = 0; k < messages; k++) ids.add(deliver(source, folders[k % folders.length]!, `${name}-seed`));
    delivered.set(name, ids);
    const fs = layout === 'fs' ? ':LAYOUT=fs' : '';
    // Appended: a test may have added lines of its own.
    appendFileSync(passwdFile, `${name}:{PLAIN}pw:${UID}:${GID}::${home}::userdb_mail=maildir:~/Maildir${fs} userdb_mail_replica=maildir:${dir}/replica/%u${fs}\n`);
    const u: ReplicaUser = { name, layout, source, replica: join(dir, 'replica', name), folders };
    users.push(u);
    return u;
  };
  for (let i = 1; i <= opts.users; i++) add(`${prefix}${i}`, i, opts.messages ?? 3 + (i % 4));
  const state = join(dir, 'state');
  const socket = join(dir, 'ctl.sock');
  return {
    dir,
    passwdFile,
    users,
    delivered,
    socket,
    args: (settings = {}) => [
      '-c', '',
      '-o', `userdb=passwd-file:${passwdFile}`,
      '-o', `replicator_state_dir=${state}`,
      ...Object.entries(settings).flatMap(([k, v]) => ['-o', `${k}=${v}`]),
    ],
    addUser: (name, messages) => add(name, users.length + 1, messages),
    stop: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface LogLine {
  at: number;
  text: string;
}

export interface Replicator {
  child: ChildProcess;
  lines: LogLine[];
  exited: Promise<number>;
  /** Resolves with the first line (from `from` on) matching `re`; rejects after `ms`. */
  waitFor(re: RegExp, ms: number, from?: number): Promise<LogLine>;
  /** Log lines of finished syncs of `user` (all users when undefined) since index `from`. */
  syncs(user?: string, from?: number): LogLine[];
  log(): string;
}

export const SYNC_LINE = /^mailferry: replicator: user (\S+): (full|incremental) sync \((\w+)\) (ok|incomplete|failed|ended)/;

export function startReplicator(site: ReplicaSite, settings: Record<string, string> = {}, extra: string[] = []): Replicator {
  const child = spawn(process.execPath, [CLI, '-o', 'mail_fsync=never', ...site.args(settings), 'replicator', '--socket', site.socket, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  const waiters: { re: RegExp; from: number; resolve(l: LogLine): void }[] = [];
  let partial = '';
  const onText = (chunk: Buffer) => {
    partial += chunk.toString('utf8');
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      const line = { at: Date.now(), text: partial.slice(0, nl) };
      partial = partial.slice(nl + 1);
      lines.push(line);
      for (const w of [...waiters]) {
        if (lines.length - 1 >= w.from && w.re.test(line.text)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  };
  child.stderr!.on('data', onText);
  child.stdout!.on('data', onText);
  const exited = new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal === 'SIGKILL' ? 137 : 143))));
  const log = () => lines.map((l) => l.text).join('\n');
  return {
    child,
    lines,
    exited,
    log,
    waitFor(re, ms, from = 0) {
      const found = lines.slice(from).find((l) => re.test(l.text));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no log line matching ${re} within ${ms} ms; log:\n${log()}`)), ms);
        waiters.push({ re, from, resolve: (l) => (clearTimeout(timer), resolve(l)) });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`the replicator exited (${code}) before a line matching ${re}; log:\n${log()}`));
        });
      });
    },
    syncs(user, from = 0) {
      return lines.slice(from).filter((l) => {
        const m = SYNC_LINE.exec(l.text);
        return m !== null && (user === undefined || m[1] === user);
      });
    },
  };
}

/** A control command through the socket, as an administrator types it. */
export function control(site: ReplicaSite, args: string[]): CliResult {
  return cli(['-c', '', 'replicator', '--socket', site.socket, ...args]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `done()` holds, polling; returns the ms it took or throws with `describe()` after `ms`. */
export async function until(done: () => boolean, ms: number, describe: () => string, every = 100): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (done()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${describe()}`);
    await sleep(every);
  }
}

export function isSocket(path: string): { socket: boolean; mode: number } {
  const st = statSync(path);
  return { socket: st.isSocket(), mode: st.mode & 0o777 };
}

export function randomInt(n: number): number {
  return Math.floor(Math.random() * n);
}

/** What a change script did: the messages it expunged, and how many changes it made. */
export interface Changes {
  expunged: Set<string>;
  ops: number;
}

/** One change a mail client or delivery agent makes on one side of one user's pair. */
export function change(site: ReplicaSite, u: ReplicaUser, side: 'source' | 'replica', c: Changes): void {
  const root = side === 'source' ? u.source : u.replica;
  const folder = u.folders[randomInt(u.folders.length)]!;
  const roll = randomInt(10);
  c.ops++;
  if (roll < 4) {
    // The replica side gets its folders from the first sync; until then deliveries go to the source.
    try {
      site.delivered.get(u.name)!.add(deliver(root, folder, `${u.name}-${side}`));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return;
  }
  const files = filesIn(root, folder);
  if (files.length === 0) return;
  const path = files[randomInt(files.length)]!;
  const id = messageIdOf(path);
  if (id === undefined) return;
  if (roll < 8) setFlags(path, ['', 'S', 'FS', 'RS', 'F', 'DS'][randomInt(6)]!);
  else if (expunge(path)) c.expunged.add(id);
}

/** Where a pair is not exactly what the script made: different sides, a message lost, one from nowhere. */
export function judge(site: ReplicaSite, u: ReplicaUser, c: Changes): string[] {
  const a = holdings(u.source);
  const b = holdings(u.replica);
  const out = differences(a, b);
  for (const id of site.delivered.get(u.name)!) {
    // An expunge racing a sync's rename of the same file may miss; then the message is on both sides.
    if (c.expunged.has(id)) {
      if (a.byId.has(id) !== b.byId.has(id)) out.push(`${id}, expunged, is on one side only`);
    } else if (!a.byId.has(id) || !b.byId.has(id)) out.push(`${id} lost (${a.byId.has(id) ? 'in the replica' : 'in the source'})`);
  }
  for (const id of new Set([...a.byId.keys(), ...b.byId.keys()])) if (!site.delivered.get(u.name)!.has(id)) out.push(`${id} came from nowhere`);
  return out.map((l) => `${u.name}: ${l}`);
}
