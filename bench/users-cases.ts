/**
 * Case 8: `backup -A -d` over many small accounts, mailferry vs doveadm, with one passwd-file:
 *   8a first run into empty replicas, 8b the same command again with nothing changed, 8c once more.
 *
 *   mailferry: node dist/cli/main.js -c '' -o userdb=passwd-file:USERS backup -A -d
 *   doveadm:   setpriv --reuid=MAILUID ... env HOME=SERIES doveadm -c CONF backup -A -d
 *
 * USERS lists every account as `uNNNN:{PLAIN}pw:UID:GID::SERIES/cur/home/uNNNN::userdb_mail=maildir:~/Maildir
 * userdb_mail_replica=maildir:SERIES/cur/replicas/uNNNN/Maildir`. SERIES/cur is a symlink pointed at
 * the copy of the tool about to run (r<rep>/<tool>), as in Dovecot's reference recipe, so both
 * tools read the very same file and one private Dovecot (auth only: userdb lookups and iteration)
 * serves every doveadm run. The accounts belong to nobody when we are root: mailferry runs as
 * root and takes each user's uid from the userdb (what an administrator runs); doveadm is started
 * as that uid, as the reference recipe does (doveadm -A must own the auth-userdb socket).
 *
 * Each repetition gives each tool a fresh copy of the master homes (message files hard-linked)
 * and empty replicas; the tools alternate, order swapped every repetition. Every run is checked:
 * every account's source and replica tally (messages and flags per folder) against the master's,
 * and a sample of accounts deeper (`mailferry mailbox status` on both sides with scratch indexes:
 * UIDVALIDITY, UIDNEXT, mailbox GUID; and the message body at every UID against the master's).
 */
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPair } from './check.js';
import { listMessages, mailboxDirs, readUidlist, tally, tallyText } from './maildir-files.js';
import { DovecotInstance } from './dovecot-instance.js';
import { groupName, mailOwner, userNameOf } from './mail-owner.js';
import { beyondNodeStart, flushDisks, formatBeyondNodeStart, median, nodeStartSeconds, sleep, timeCommand, type BeyondNodeStart, type Timed } from './measure.js';
import { CLI } from './tools.js';
import { userName, type UsersDataset } from './users-data.js';
import { DATA_DIR, warmCache, workCopy } from './workspace.js';

export type UsersTool = 'mailferry' | 'doveadm';

export const USERS_CASES = [
  { id: '8a', title: 'backup -A -d, first run into empty replicas' },
  { id: '8b', title: 'backup -A -d again, nothing changed' },
  // What a nightly run over unchanged accounts costs: every mailbox was last written long before
  // the previous run looked at it (8b still finds the replicas 8a had just written).
  { id: '8c', title: 'backup -A -d a third time, nothing changed' },
] as const;

export const USERS_COMMANDS = {
  mailferry: "node dist/cli/main.js -c '' -o userdb=passwd-file:USERS backup -A -d   (as root; each user runs under the userdb's uid; -j defaults to the cores)",
  doveadm: 'setpriv --reuid=MAILUID --regid=MAILGID --clear-groups env HOME=SERIES doveadm -c CONF backup -A -d   (CONF: auth only, passwd-file USERS for passdb and userdb)',
};

export interface UsersSample {
  caseId: string;
  tool: UsersTool;
  rep: number;
  seconds: number;
  cpuSeconds: number | undefined;
  rssKb: number | undefined;
  code: number;
  attempts: number;
  problems: string[];
  /** `node -e 0` timed just before this run (8b and 8c, mailferry only). */
  nodeStartSeconds?: number;
}

/** A Dovecot that only answers userdb lookups and iteration from USERS, for doveadm -A. */
class AuthDovecot {
  readonly conf: string;
  private readonly instance: DovecotInstance;

  constructor(private readonly base: string, usersFile: string, owner: { uid: number; gid: number; root: boolean }) {
    this.conf = join(base, 'dovecot.conf');
    this.instance = new DovecotInstance('case-8', this.conf);
    // doveadm reads the configuration as the mail user.
    chmodSync(base, 0o755);
    mkdirSync(join(base, 'run'), { recursive: true });
    mkdirSync(join(base, 'state'), { recursive: true });
    // -A is refused unless the client owns the auth-userdb socket.
    writeFileSync(this.conf, `# case 8: auth only (userdb lookup and iteration); no protocols
protocols =
base_dir = ${base}/run
state_dir = ${base}/state
instance_name = mailferry-bench-users
log_path = ${base}/dovecot.log
stats_writer_socket_path =
ssl = no
first_valid_uid = ${owner.uid}
${owner.root ? '' : `default_internal_user = ${userNameOf(owner.uid)}\ndefault_internal_group = ${groupName(owner.gid)}\n`}passdb {
  driver = passwd-file
  args = scheme=PLAIN ${usersFile}
}
userdb {
  driver = passwd-file
  args = ${usersFile}
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
}
service auth {
  unix_listener auth-userdb {
    mode = 0600
    user = ${userNameOf(owner.uid)}
    group = ${groupName(owner.gid)}
  }
}
`);
  }

  start(): Promise<void> {
    return this.instance.start(join(this.base, 'run', 'auth-userdb'));
  }

  stop(): Promise<void> {
    return this.instance.stop();
  }
}

/** UID -> SHA-1 of the message file, for every mailbox of a Maildir++ root. */
function uidBodies(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, dir] of mailboxDirs(root)) {
    const files = new Map(listMessages(dir).map((m) => [m.basename, join(dir, m.sub, m.file)]));
    for (const [uid, base] of readUidlist(dir)) {
      const f = files.get(base);
      if (f) out.set(`${name} ${uid}`, createHash('sha1').update(readFileSync(f)).digest('hex'));
    }
  }
  return out;
}

function compareBodies(side: string, got: Map<string, string>, want: Map<string, string>): string[] {
  const problems: string[] = [];
  for (const [k, h] of want) if (got.get(k) !== h) problems.push(`${side} ${k}: ${got.has(k) ? 'another message' : 'missing'}`);
  for (const k of got.keys()) if (!want.has(k)) problems.push(`${side} ${k}: not in the source`);
  return problems.slice(0, 3);
}

/** Accounts checked deeper: the first, the last, and evenly between. */
function sampleUsers(n: number, count: number): number[] {
  return [...new Set(Array.from({ length: count }, (_, i) => 1 + Math.floor((i * (n - 1)) / Math.max(1, count - 1))))];
}

interface Expected { tallies: string[]; bodies: Map<number, Map<string, string>> }

function expectedOf(ds: UsersDataset, sample: number[]): Expected {
  const tallies = Array.from({ length: ds.users }, (_, i) => tallyText(tally(join(ds.homes, userName(i + 1), 'Maildir'))));
  return { tallies, bodies: new Map(sample.map((k) => [k, uidBodies(join(ds.homes, userName(k), 'Maildir'))])) };
}

/** Problems with one tool's copy after a run (empty: every account is right). */
function checkCopy(copy: string, ds: UsersDataset, want: Expected, sample: number[], checkDir: string): string[] {
  const problems: string[] = [];
  let wrong = 0;
  for (let k = 1; k <= ds.users; k++) {
    const u = userName(k);
    for (const [side, root] of [['source', join(copy, 'home', u, 'Maildir')], ['replica', join(copy, 'replicas', u, 'Maildir')]] as const) {
      let got: string;
      try {
        got = tallyText(tally(root));
      } catch (e) {
        got = `unreadable: ${(e as Error).message}`;
      }
      if (got !== want.tallies[k - 1]) {
        if (++wrong <= 3) problems.push(`${u} ${side}: ${got.slice(0, 160)}, expected ${want.tallies[k - 1]!.slice(0, 160)}`);
      }
    }
  }
  if (wrong > 3) problems.push(`... ${wrong} wrong sides of accounts in all`);
  for (const k of sample) {
    const u = userName(k);
    const src = join(copy, 'home', u, 'Maildir'), dst = join(copy, 'replicas', u, 'Maildir');
    const deep = [
      ...checkPair(src, dst, tally(join(ds.homes, u, 'Maildir')), [join(checkDir, u, 'src'), join(checkDir, u, 'dst')]),
      ...compareBodies('source', uidBodies(src), want.bodies.get(k)!),
      ...compareBodies('replica', uidBodies(dst), want.bodies.get(k)!),
    ];
    problems.push(...deep.map((p) => `${u}: ${p}`));
  }
  return problems;
}

/**
 * Both tools trust a directory's mtime only once it is a little old (mailferry: 2 s; Dovecot
 * treats a directory changed in the current second as dirty); a periodic backup runs long after
 * the last write, so each timed run starts at least this long after the last write.
 */
const SETTLE_MS = 2500;

export interface UsersSeriesResult { samples: UsersSample[]; sampleSize: number }

export async function runUsersSeries(opts: {
  ds: UsersDataset; reps: number; doveadm: boolean; sampleSize: number; log: (s: string) => void;
}): Promise<UsersSeriesResult> {
  const { ds, reps, log } = opts;
  const owner = mailOwner();
  const tools: UsersTool[] = ['mailferry', ...(opts.doveadm ? ['doveadm' as const] : [])];
  const series = join(DATA_DIR, 'work', `users-${ds.users}`);
  mkdirSync(series, { recursive: true });
  const usersFile = join(series, 'users');
  const current = join(series, 'cur');
  const lines = Array.from({ length: ds.users }, (_, i) => {
    const u = userName(i + 1);
    return `${u}:{PLAIN}pw-${u}:${owner.uid}:${owner.gid}::${current}/home/${u}::userdb_mail=maildir:~/Maildir userdb_mail_replica=maildir:${current}/replicas/${u}/Maildir\n`;
  });
  writeFileSync(usersFile, lines.join(''));
  chmodSync(usersFile, 0o644);
  const sample = sampleUsers(ds.users, opts.sampleSize);
  const want = expectedOf(ds, sample);
  // Unix socket paths are short: the private Dovecot lives under /tmp.
  const dovecot = opts.doveadm ? new AuthDovecot(mkdtempSync(join(tmpdir(), 'mailferry-bench-users-')), usersFile, owner) : undefined;
  const samples: UsersSample[] = [];
  let lastWrite = Date.now();
  const settle = async () => {
    const wait = lastWrite + SETTLE_MS - Date.now();
    if (wait > 0) await sleep(wait);
  };
  const pointAt = (dir: string) => {
    rmSync(current, { force: true });
    symlinkSync(dir, current);
  };
  const run = (tool: UsersTool): Promise<Timed> => tool === 'mailferry'
    ? timeCommand(process.execPath, [CLI, '-c', '', '-o', `userdb=passwd-file:${usersFile}`, 'backup', '-A', '-d'])
    : timeCommand(owner.root ? 'setpriv' : 'env', [
      ...(owner.root ? [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--clear-groups', 'env'] : []),
      `HOME=${series}`, 'doveadm', '-c', dovecot!.conf, 'backup', '-A', '-d',
    ]);
  try {
    await dovecot?.start();
    for (let rep = 0; rep < reps; rep++) {
      const order = rep % 2 === 0 ? tools : [...tools].reverse();
      const broken = new Set<UsersTool>();
      for (const tool of order) {
        const dir = join(series, `r${rep}`, tool);
        mkdirSync(dir, { recursive: true });
        workCopy(ds.homes, join(dir, 'home'), owner.root ? owner : undefined);
        mkdirSync(join(dir, 'replicas'));
        if (owner.root) for (const d of [dir, join(dir, 'replicas')]) chownSync(d, owner.uid, owner.gid);
      }
      lastWrite = Date.now();
      for (const c of USERS_CASES) {
        await settle();
        for (const tool of order) {
          const dir = join(series, `r${rep}`, tool);
          if (broken.has(tool)) {
            samples.push({ caseId: c.id, tool, rep, seconds: NaN, cpuSeconds: undefined, rssKb: undefined, code: -1, attempts: 0, problems: ['skipped: an earlier case of this repetition failed'] });
            continue;
          }
          pointAt(join(`r${rep}`, tool));
          // The VM pages out cold page cache: read the master in, so both tools read it from memory.
          if (c.id === '8a') warmCache(ds.homes);
          flushDisks();
          const nodeStart = c.id !== '8a' && tool === 'mailferry' ? await nodeStartSeconds() : undefined;
          const t = await run(tool);
          // Exit 2 is "done, but run again" for both tools; the case then costs both runs.
          let attempts = 1;
          while (t.code === 2 && attempts < 3) {
            const again = await run(tool);
            attempts++;
            Object.assign(t, { ...again, seconds: t.seconds + again.seconds, cpuSeconds: (t.cpuSeconds ?? 0) + (again.cpuSeconds ?? 0), rssKb: Math.max(t.rssKb ?? 0, again.rssKb ?? 0) || undefined });
          }
          lastWrite = Date.now();
          const problems = t.code === 0 ? [] : [`exit ${t.code}: ${(t.stderr.trim() || t.stdout.trim()).split('\n').slice(-2).join(' / ').slice(0, 300)}`];
          if (problems.length === 0) problems.push(...checkCopy(dir, ds, want, sample, join(dir, 'check')));
          if (problems.length > 0) broken.add(tool);
          samples.push({ caseId: c.id, tool, rep, seconds: t.seconds, cpuSeconds: t.cpuSeconds, rssKb: t.rssKb, code: t.code, attempts, problems, nodeStartSeconds: nodeStart });
          log(`  users=${ds.users} rep ${rep + 1}/${reps} case ${c.id} ${tool.padEnd(9)} ${t.seconds.toFixed(3).padStart(8)} s  CPU ${(t.cpuSeconds ?? NaN).toFixed(2).padStart(6)} s` +
            `${attempts > 1 ? ` (exit 2, ${attempts} runs)` : ''}${problems.length ? `  WRONG: ${problems.join('; ').slice(0, 400)}` : ''}`);
        }
      }
    }
  } finally {
    await dovecot?.stop();
    rmSync(current, { force: true });
  }
  return { samples, sampleSize: sample.length };
}

export interface UsersToolSummary {
  medianSeconds: number | null;
  seconds: number[];
  medianCpuSeconds: number | null;
  /** Largest single process over the repetitions (GNU time's maximum over a process and its waited children). */
  peakRssKb: number | null;
  msPerUser: number | null;
  runs: number;
  correct: number;
  ranAgain: number;
  problems: string[];
}

export interface UsersCaseSummary extends Partial<BeyondNodeStart> { id: string; title: string; mailferry?: UsersToolSummary; doveadm?: UsersToolSummary; ratio: number | null; cpuRatio: number | null }

export interface UsersSeriesSummary {
  users: number; messages: number; messagesPerUser: number; repetitions: number; jobs: number; deepChecked: number;
  cases: UsersCaseSummary[];
  otherCpu?: { seconds: number; wallSeconds: number };
}

function summarize(samples: UsersSample[], tool: UsersTool, caseId: string, users: number): UsersToolSummary | undefined {
  const mine = samples.filter((s) => s.tool === tool && s.caseId === caseId);
  if (mine.length === 0) return undefined;
  const good = mine.filter((s) => s.problems.length === 0);
  // Only correct runs count for time: a wrong run's speed means nothing.
  const seconds = good.map((s) => s.seconds);
  const med = seconds.length ? median(seconds) : null;
  const cpu = good.map((s) => s.cpuSeconds).filter((x): x is number => x !== undefined);
  const rss = mine.map((s) => s.rssKb ?? 0).filter((x) => x > 0);
  return {
    medianSeconds: med, seconds, medianCpuSeconds: cpu.length ? median(cpu) : null, peakRssKb: rss.length ? Math.max(...rss) : null,
    msPerUser: med === null ? null : +((1000 * med) / users).toFixed(2), runs: mine.length, correct: good.length,
    ranAgain: mine.filter((s) => s.attempts > 1).length, problems: [...new Set(mine.flatMap((s) => s.problems))].slice(0, 5),
  };
}

export function summarizeUsers(ds: UsersDataset, reps: number, r: UsersSeriesResult): UsersSeriesSummary {
  return {
    users: ds.users, messages: ds.messages, messagesPerUser: ds.messages / ds.users, repetitions: reps, jobs: availableParallelism(), deepChecked: r.sampleSize,
    cases: USERS_CASES.map((c) => {
      const mailferry = summarize(r.samples, 'mailferry', c.id, ds.users);
      const doveadm = summarize(r.samples, 'doveadm', c.id, ds.users);
      const ratio = mailferry?.medianSeconds && doveadm?.medianSeconds ? mailferry.medianSeconds / doveadm.medianSeconds : null;
      const cpuRatio = mailferry?.medianCpuSeconds && doveadm?.medianCpuSeconds ? mailferry.medianCpuSeconds / doveadm.medianCpuSeconds : null;
      const good = r.samples.filter((x) => x.tool === 'mailferry' && x.caseId === c.id && x.problems.length === 0);
      const node = c.id === '8a' ? {} : beyondNodeStart(good.map((x) => x.seconds), good.flatMap((x) => (x.nodeStartSeconds === undefined ? [] : [x.nodeStartSeconds])));
      return { id: c.id, title: c.title, mailferry, doveadm, ratio, cpuRatio, ...node };
    }),
  };
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const secs = (t?: UsersToolSummary) => (t?.medianSeconds == null ? (t ? 'FAILED' : 'n/a') : t.medianSeconds.toFixed(3));
const cpuS = (t?: UsersToolSummary) => (t?.medianCpuSeconds == null ? '-' : t.medianCpuSeconds.toFixed(2));
const ms = (t?: UsersToolSummary) => (t?.msPerUser == null ? '-' : t.msPerUser.toFixed(2));
const mb = (t?: UsersToolSummary) => (t?.peakRssKb == null ? '-' : (t.peakRssKb / 1024).toFixed(1));
const ok = (t?: UsersToolSummary) => (t ? `${t.correct}/${t.runs}` : '-');
const x = (r: number | null) => (r == null ? '-' : `${r.toFixed(2)}x`);

export function formatUsers(s: UsersSeriesSummary, doveadmMissing: boolean): string {
  const lines = [`== ${s.users} accounts x ${s.messagesPerUser} messages (2 folders), ${s.messages} messages | default mail_fsync (optimized) on BOTH tools | mailferry -j ${s.jobs} (the cores) | ${s.repetitions} repetitions, median wall seconds ==`];
  if (s.otherCpu && s.otherCpu.seconds > 0.05 * s.otherCpu.wallSeconds) {
    lines.push(`   WARNING: other processes used ${s.otherCpu.seconds} CPU-s during this ${s.otherCpu.wallSeconds} s series (${cpus().length} CPUs): times are noisy`);
  }
  lines.push([pad('case', 48), lpad('mailferry', 10), lpad('doveadm', 10), lpad('mf/dv', 7), lpad('mf CPU s', 9), lpad('dv CPU s', 9), lpad('CPU mf/dv', 10),
    lpad('mf ms/user', 11), lpad('dv ms/user', 11), lpad('mf RSS MB', 10), lpad('dv RSS MB', 10), lpad('correct mf', 11), lpad('dv', 5)].join(' '));
  for (const c of s.cases) {
    lines.push([pad(`${c.id.padEnd(3)}${c.title}`, 48), lpad(secs(c.mailferry), 10), lpad(doveadmMissing ? 'missing' : secs(c.doveadm), 10), lpad(x(c.ratio), 7),
      lpad(cpuS(c.mailferry), 9), lpad(cpuS(c.doveadm), 9), lpad(x(c.cpuRatio), 10), lpad(ms(c.mailferry), 11), lpad(ms(c.doveadm), 11),
      lpad(mb(c.mailferry), 10), lpad(mb(c.doveadm), 10), lpad(ok(c.mailferry), 11), lpad(ok(c.doveadm), 5)].join(' '));
  }
  lines.push(...formatBeyondNodeStart(s.cases));
  for (const c of s.cases) {
    for (const [name, t] of [['mailferry', c.mailferry], ['doveadm', c.doveadm]] as const) {
      if (t && t.ranAgain) lines.push(`   case ${c.id} ${name} exited 2 ("run again") in ${t.ranAgain}/${t.runs} repetitions and was run again; its time is the sum of the runs`);
      if (t && t.problems.length) lines.push(`   case ${c.id} ${name} WRONG in ${t.runs - t.correct} run(s): ${t.problems.join(' | ').slice(0, 400)}`);
    }
  }
  return lines.join('\n');
}

