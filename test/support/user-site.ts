/**
 * A mail site for tests of runs over many users: a Dovecot passwd-file userdb of users with
 * their own uids and homes, whose mail Dovecot itself wrote (imported from corpus messages, then
 * flagged and expunged by doveadm, so UIDs have gaps and keywords live in dovecot-keywords), and
 * doveadm as the oracle that reads any user's mail location. As root every user has its own
 * uid and gid; otherwise they all share the test's.
 *
 * Why it is set up like this:
 * - Dovecot's userdb is a second passwd-file with only uid, gid and home, so doveadm takes the
 *   user's identity and reads whatever location a call names (a userdb `mail` field would win
 *   over `-o mail_location`).
 * - doveadm reads a location through a copy (cp -a keeps owners and modes), so the oracle never
 *   writes into the mail it judges: even with INDEX=MEMORY Dovecot writes a dovecot-uidlist when
 *   it finds files the uidlist lacks, which would hide exactly the mistakes a test looks for.
 * - `doveadm batch` is used only for writes: with `-f tab` it runs rows together.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { encodeMutf7 } from '../../src/model/mutf7.js';
import { corpusMessages } from './corpus.js';
import { parseDoveadmTable, startDovecot, type Dovecot } from './dovecot.js';

export const ROOT = process.getuid?.() === 0;

export type Layout = 'maildir++' | 'fs' | 'mbox';

export interface SiteUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** The user's mail, a location with the home written out. */
  mail: string;
  layout: Layout;
  noreplicate: boolean;
  /** Where -d sends the user's mail, written out; undefined for noreplicate users. */
  replica?: string;
  /** A system account made by useradd (the passwd userdb), not a passwd-file line. */
  system: boolean;
}

export interface MessageView {
  uid: number;
  /** Dovecot's GUID; in mbox mailferry's X-Mailferry-GUID header, or '' without one. */
  guid: string;
  flags: string[];
  /** size.physical, less the X-Mailferry-GUID line where mailferry added one. */
  size: number;
  messageId: string;
}

export interface MailboxView {
  messages: number;
  uidvalidity: number;
  uidnext: number;
  /** Mailbox GUID; '' where Dovecot keeps none outside its index (mbox). */
  guid: string;
  mail: MessageView[];
}

/** Mailboxes by name, hierarchy parts joined with '/'. */
export type MailView = Map<string, MailboxView>;

const FOLDERS: Record<Layout, string[][]> = {
  'maildir++': [['Sent Items'], ['Entwürfe'], ['Work', 'Q3'], ['A & B'], ['日本語'], ['Lists', 'dev']],
  // Dots inside names only where the separator is '/'.
  fs: [['Sent Items'], ['Archive', 'v1.2 notes'], ['Entwürfe', 'Q3.2024'], ['日本語']],
  mbox: [['Sent Items'], ['Archive', 'v1.2'], ['Entwürfe']],
};

/** Corpus messages usable as test mail: LF only, no mbox From_ line, one single-line Message-ID. */
function usableCorpus(n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const raw of corpusMessages(n * 2)) {
    if (out.length === n) break;
    if (raw.includes('\r')) continue;
    const m = raw.subarray(0, 5).toString('latin1') === 'From ' ? raw.subarray(raw.indexOf('\n') + 1) : raw;
    const head = m.subarray(0, Math.max(0, m.indexOf('\n\n'))).toString('latin1');
    const ids = head.match(/^message-id:.*$/gim) ?? [];
    if (ids.length !== 1 || !/^message-id: *<[^<>\s]+> *$/i.test(ids[0]!)) continue;
    if (/^message-id:.*\n[ \t]/im.test(head)) continue;
    out.push(m);
  }
  if (out.length < n) throw new Error(`only ${out.length} usable corpus messages, wanted ${n}`);
  return out;
}

export function messageIdOf(message: Buffer): string {
  const head = message.subarray(0, Math.max(0, message.indexOf('\n\n'))).toString('latin1');
  return /^message-id: *(<[^<>\s]+>)/im.exec(head)?.[1] ?? '';
}

function run(cmd: string, args: string[], input?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`${cmd} ${args.join(' ')}: ${signal ?? `exit ${code}`}: ${Buffer.concat(err).toString('utf8').trim()}`));
    });
    if (input) child.stdin!.end(input);
  });
}

/** Runs `fn` over `items`, `limit` at a time (the machine has two cores; doveadm is mostly startup). */
export async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/** `maildir:PATH[:LAYOUT=fs]` or `mbox:PATH[:INBOX=FILE]` taken apart; other options are dropped. */
function parseLocation(location: string): { kind: 'maildir' | 'mbox'; path: string; fs: boolean; inbox?: string } {
  const m = /^(maildir|mbox):([^:]+)((?::[^:]*)*)$/.exec(location);
  if (!m) throw new Error(`test site: cannot read location ${location}`);
  const opts = m[3]!.split(':').filter(Boolean);
  const inbox = opts.find((o) => o.startsWith('INBOX='))?.slice(6);
  return { kind: m[1] as 'maildir' | 'mbox', path: m[2]!, fs: opts.includes('LAYOUT=fs'), inbox };
}

export interface UserSite {
  dir: string;
  dovecot: Dovecot;
  /** The passwd-file users, then the system users. */
  users: SiteUser[];
  passwdFile: string;
  /** What every CLI run over the passwd-file users starts with: no config file, the userdb, the defaults. */
  args: string[];
  /** Mail written by the seeding, by user: Message-IDs in each mailbox. */
  seeded: Map<string, Map<string, string[]>>;
  /** Corpus messages not yet used, for changes made later. */
  spare: Buffer[];
  doveadm(user: SiteUser, location: string, args: string[], input?: Buffer): Promise<string>;
  /** What doveadm sees at `location`, read as `user` from a copy. */
  view(user: SiteUser, location: string): Promise<MailView>;
  /** A fresh directory every user may create its own entry in (sticky, as /tmp). */
  sharedDir(name: string): string;
  stop(): Promise<void>;
}

/** A block of `n` free uids (and gids) at or above `from`, for accounts useradd makes. */
function freeIdBlock(from: number, n: number): number {
  const taken = new Set<number>();
  for (const file of ['/etc/passwd', '/etc/group']) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const id = Number(line.split(':')[2]);
      if (Number.isInteger(id)) taken.add(id);
    }
  }
  for (let base = from; ; base += n) {
    if (Array.from({ length: n }, (_, i) => base + i).every((id) => !taken.has(id))) return base;
  }
}

/** System accounts a killed test run left behind (their names carry the dead pid). */
function removeStaleAccounts(prefix: string): void {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const m = new RegExp(`^(${prefix}(\\d+)x\\d+):`).exec(line);
    if (!m) continue;
    try {
      process.kill(Number(m[2]), 0);
      continue;
    } catch {
      /* its test process is gone */
    }
    for (const [cmd, name] of [['userdel', m[1]!], ['groupdel', m[1]!]]) {
      try {
        execFileSync(cmd!, [name!], { stdio: 'ignore' });
      } catch {
        /* best effort */
      }
    }
  }
}

export const SYSTEM_PREFIX = 'mfsite';

export async function makeUserSite(opts: { users: number; systemUsers?: number }): Promise<UserSite> {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-site-'));
  chmodSync(dir, 0o711);
  mkdirSync(join(dir, 'home'), { mode: 0o711 });
  const me = { uid: process.getuid!(), gid: process.getgid!() };
  // 3 to 8 messages a user: enough for gaps, flags and two or three folders, and quick to copy.
  const count = (i: number) => 3 + (i % 6);
  const users: SiteUser[] = [];
  const lines: string[] = [];
  for (let i = 1; i <= opts.users; i++) {
    const name = `u${i}`;
    const home = join(dir, 'home', name);
    const layout: Layout = i % 17 === 5 ? 'mbox' : i % 10 === 3 ? 'fs' : 'maildir++';
    const noreplicate = i % 12 === 0;
    const uid = ROOT ? 60000 + i : me.uid;
    const gid = ROOT ? 61000 + i : me.gid;
    const extra: string[] = [];
    let mail = `maildir:${home}/Maildir`;
    if (layout === 'mbox') {
      extra.push('userdb_mail=mbox:~/mail:INBOX=~/mail/inbox');
      mail = `mbox:${home}/mail:INBOX=${home}/mail/inbox`;
    } else if (layout === 'fs') {
      extra.push('userdb_mail=maildir:~/Mail/store:LAYOUT=fs');
      mail = `maildir:${home}/Mail/store:LAYOUT=fs`;
    }
    let replica: string | undefined;
    if (noreplicate) extra.push('userdb_noreplicate=y');
    // Every fourth Maildir++ user has no mail_replica field and gets the setting's; names with
    // dots (fs, mbox) need a LAYOUT=fs replica.
    if (i % 4 === 1 && layout === 'maildir++') replica = `maildir:${dir}/replica-default/${name}`;
    else {
      const fs = layout === 'maildir++' ? '' : ':LAYOUT=fs';
      extra.push(`userdb_mail_replica=maildir:${dir}/replica/%u${fs}`);
      replica = `maildir:${dir}/replica/${name}${fs}`;
    }
    users.push({ name, uid, gid, home, mail, layout, noreplicate, replica: noreplicate ? undefined : replica, system: false });
    lines.push(`${name}:{PLAIN}secret:${uid}:${gid}::${home}::${extra.join(' ')}`);
  }
  const passwdFile = join(dir, 'users');
  writeFileSync(passwdFile, `# ${opts.users} users for a test\n${lines.join('\n')}\n`);

  const systemUsers: SiteUser[] = [];
  if ((opts.systemUsers ?? 0) > 0) {
    if (!ROOT) throw new Error('system users need root');
    removeStaleAccounts(SYSTEM_PREFIX);
    const base = freeIdBlock(47000, opts.systemUsers!);
    mkdirSync(join(dir, 'sys'), { mode: 0o711 });
    for (let k = 0; k < opts.systemUsers!; k++) {
      const name = `${SYSTEM_PREFIX}${process.pid}x${k}`;
      const home = join(dir, 'sys', name);
      execFileSync('groupadd', ['-g', String(base + k), name]);
      execFileSync('useradd', ['-m', '-d', home, '-u', String(base + k), '-g', String(base + k), '-s', '/usr/sbin/nologin', name]);
      systemUsers.push({ name, uid: base + k, gid: base + k, home, mail: `maildir:${home}/Maildir`, layout: 'maildir++', noreplicate: false, system: true });
    }
    users.push(...systemUsers);
  }

  // Dovecot's own view of the same people: identity and home only.
  const oracleUsers = join(dir, 'dovecot-users');
  writeFileSync(oracleUsers, users.map((u) => `${u.name}:{PLAIN}secret:${u.uid}:${u.gid}::${u.home}::\n`).join(''), { mode: 0o644 });
  chmodSync(oracleUsers, 0o644);
  const dovecot = await startDovecot({
    users: [],
    imap: false,
    extraConfig: `first_valid_uid = 500\nlast_valid_uid = 0\nuserdb {\n  driver = passwd-file\n  args = username_format=%u ${oracleUsers}\n}\n`,
  });

  const scratch = join(dir, 'oracle');
  mkdirSync(scratch, { mode: 0o711 });
  let views = 0;
  const doveadm = (user: SiteUser, location: string, args: string[], input?: Buffer): Promise<string> => {
    // -u goes last (getopt permutes), except for batch, whose last command would take it as its own.
    const full = args[0] === 'batch' ? ['batch', '-u', user.name, ...args.slice(1)] : [...args, '-u', user.name];
    return run('doveadm', ['-c', dovecot.configPath, '-o', `mail_location=${location}`, ...full], input);
  };

  const view = async (user: SiteUser, location: string): Promise<MailView> => {
    const loc = parseLocation(location);
    const copy = join(scratch, String(views++));
    execFileSync('cp', ['-a', loc.path, copy]);
    let copied: string;
    if (loc.kind === 'mbox') {
      const inbox = loc.inbox ?? join(loc.path, 'inbox');
      const inside = relative(loc.path, inbox);
      const copyInbox = inside.startsWith('..') ? `${copy}.inbox` : join(copy, inside);
      if (inside.startsWith('..')) execFileSync('cp', ['-a', inbox, copyInbox]);
      // With the copy's own Dovecot index, if it has one: a fresh parse by Dovecot 2.3 drops the
      // keywords of a first message whose X-Keywords comes before X-IMAPbase, as Dovecot's own
      // expunge of the old first message leaves them.
      copied = `mbox:${copy}:INBOX=${copyInbox}`;
    } else {
      copied = `maildir:${copy}${loc.fs ? ':LAYOUT=fs' : ''}:INDEX=MEMORY`;
    }
    try {
      const sep = loc.kind === 'maildir' && !loc.fs ? '.' : '/';
      const statusFields = loc.kind === 'mbox' ? 'messages uidvalidity uidnext' : 'messages uidvalidity uidnext guid';
      const status = parseDoveadmTable(await doveadm(user, copied, ['-f', 'tab', 'mailbox', 'status', statusFields, '*']));
      const fields = `mailbox uid guid flags size.physical hdr.message-id${loc.kind === 'mbox' ? ' hdr.x-mailferry-guid' : ''}`;
      const fetched = parseDoveadmTable(await doveadm(user, copied, ['-f', 'tab', 'fetch', fields, 'mailbox', '*']));
      const out: MailView = new Map();
      const key = (name: string) => name.split(sep).join('/');
      for (const r of status) {
        out.set(key(r.mailbox!), { messages: Number(r.messages), uidvalidity: Number(r.uidvalidity), uidnext: Number(r.uidnext), guid: r.guid ?? '', mail: [] });
      }
      for (const r of fetched) {
        const box = out.get(key(r.mailbox!));
        if (!box) throw new Error(`doveadm fetched from ${r.mailbox} which mailbox status did not list`);
        // mbox has no GUIDs: mailferry keeps a message's in a header it adds, which Dovecot serves.
        const stamp = (r['hdr.x-mailferry-guid'] ?? '').trim();
        box.mail.push({
          uid: Number(r.uid),
          guid: loc.kind === 'mbox' ? stamp : r.guid!,
          flags: (r.flags ?? '').split(' ').filter((f) => f !== '' && f !== '\\Recent').sort(),
          size: Number(r['size.physical']) - (stamp === '' ? 0 : Buffer.byteLength(`X-Mailferry-GUID: ${stamp}\n`)),
          messageId: (r['hdr.message-id'] ?? '').trim(),
        });
      }
      for (const [name, box] of out) {
        box.mail.sort((a, b) => a.uid - b.uid);
        if (box.mail.length !== box.messages) throw new Error(`doveadm: ${name} has ${box.messages} messages but fetch gave ${box.mail.length}`);
      }
      return out;
    } finally {
      rmSync(copy, { recursive: true, force: true });
      if (loc.kind === 'mbox') rmSync(`${copy}.inbox`, { force: true });
    }
  };

  // Seeding: a LAYOUT=fs staging Maildir per user (Dovecot's on-disk names are mUTF-7), which
  // doveadm imports into the user's own location; then flags, keywords and an expunge.
  const mail = usableCorpus(users.reduce((n, _u, i) => n + count(i + 1), 0) + 120);
  const seeded = new Map<string, Map<string, string[]>>();
  let next = 0;
  const jobs: { user: SiteUser; stage: string; boxes: string[][] }[] = [];
  users.forEach((user, idx) => {
    const i = idx + 1;
    const folders = FOLDERS[user.layout];
    const boxes = [['INBOX'], folders[i % folders.length]!, ...(i % 3 === 0 ? [folders[(i + 2) % folders.length]!] : [])];
    const stage = join(dir, 'stage', user.name);
    const byBox = new Map<string, string[]>();
    const n = count(i);
    for (let k = 0; k < n; k++) {
      const box = k < Math.ceil(n / 2) ? boxes[0]! : boxes[1 + (k % (boxes.length - 1))]!;
      const boxDir = box[0] === 'INBOX' ? stage : join(stage, ...box.map(encodeMutf7));
      for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(boxDir, sub), { recursive: true });
      const m = mail[next++]!;
      const flags = ['S', 'FS', '', 'RS', 'D'][(i + k) % 5]!;
      writeFileSync(join(boxDir, 'cur', `${1700000000 + next}.M${next}P${process.pid}.stage,S=${m.length}:2,${flags}`), m);
      const names = byBox.get(box.join('/')) ?? [];
      names.push(messageIdOf(m));
      byBox.set(box.join('/'), names);
    }
    seeded.set(user.name, byBox);
    jobs.push({ user, stage, boxes });
  });
  for (const { user, stage } of jobs) {
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, stage]);
    if (!user.system) {
      mkdirSync(user.home, { mode: 0o700 });
      chownSync(user.home, user.uid, user.gid);
    }
  }
  chmodSync(join(dir, 'stage'), 0o711);
  await eachLimit(jobs, 2, async ({ user, stage, boxes }) => {
    await doveadm(user, user.mail, ['import', '-s', `maildir:${stage}:LAYOUT=fs`, '', 'all']);
    const sep = user.layout === 'maildir++' ? '.' : '/';
    const folder = boxes[1]!.join(sep);
    // INBOX holds at least two messages: its second goes, so UIDs have a gap and UIDNEXT is past a hole.
    await doveadm(user, user.mail, ['batch', '%',
      'flags', 'add', '$Label1 Wichtig \\Flagged', 'mailbox', 'INBOX', 'uid', '1', '%',
      'flags', 'add', 'projekt-x', 'mailbox', folder, 'all', '%',
      'expunge', 'mailbox', 'INBOX', 'uid', '2']);
    const byBox = seeded.get(user.name)!;
    byBox.set('INBOX', byBox.get('INBOX')!.filter((_, k) => k !== 1));
  });
  rmSync(join(dir, 'stage'), { recursive: true, force: true });

  const site: UserSite = {
    dir,
    dovecot,
    users,
    passwdFile,
    args: ['-c', '', '-o', `userdb=passwd-file:${passwdFile}`, '-o', 'mail_location=maildir:~/Maildir', '-o', `mail_replica=maildir:${dir}/replica-default/%u`],
    seeded,
    spare: mail.slice(next),
    doveadm,
    view,
    sharedDir(name: string) {
      const path = join(dir, name);
      mkdirSync(path);
      chmodSync(path, 0o1777);
      return path;
    },
    async stop() {
      await dovecot.stop();
      for (const u of systemUsers) {
        try {
          execFileSync('userdel', [u.name], { stdio: 'ignore' });
        } catch {
          /* already gone */
        }
        try {
          execFileSync('groupdel', [u.name], { stdio: 'ignore' });
        } catch {
          /* removed with the user */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  site.sharedDir('replica');
  site.sharedDir('replica-default');
  return site;
}

/** Every entry under `root` (itself included), for owner and mode checks; links are not followed. */
export function walkTree(root: string): { path: string; uid: number; gid: number; mode: number; dir: boolean }[] {
  const out: { path: string; uid: number; gid: number; mode: number; dir: boolean }[] = [];
  const visit = (p: string) => {
    const st = lstatSync(p);
    out.push({ path: p, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, dir: st.isDirectory() });
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
  };
  visit(root);
  return out;
}

/** A file name with its digit runs and hex ids folded, so dovecot-uidvalidity.5f3a... of two stores compare. */
export function nameShape(path: string): string {
  return basename(path).replace(/[0-9a-f]{6,}/g, '#').replace(/\d+/g, '#');
}

/** The name shapes of entries under `root` that the group or others may read or enter. */
export function looseShapes(root: string): Set<string> {
  return new Set(walkTree(root).filter((e) => (e.mode & 0o077) !== 0).map((e) => nameShape(e.path)));
}

/** SHA-256 of every message file of a Maildir tree (either layout), with the file's path. */
export function maildirBodies(root: string): { path: string; hash: string; messageId: string }[] {
  const out: { path: string; hash: string; messageId: string }[] = [];
  for (const e of walkTree(root)) {
    if (e.dir || !/\/(cur|new)\/[^/]+$/.test(e.path)) continue;
    const body = readFileSync(e.path);
    out.push({ path: e.path, hash: createHash('sha256').update(body).digest('hex'), messageId: messageIdOf(body) });
  }
  return out;
}
