/**
 * mailferry vs Dovecot's doveadm (cases 1-4, 5, 8) and mbsync (cases 5-7) on the same data, in the same run. Usage:
 *   npm run bench               full: SpamAssassin corpus with mail_fsync=never and =optimized, 100k account with never;
 *                               cases 4-7 (mbox, IMAP) on the corpus, 5 repetitions; case 8 (backup -A -d) on 1,000 accounts, 3 repetitions
 *   npm run bench -- --quick    corpus, mail_fsync=never, 3 repetitions; cases 4-7 on a third of the corpus; case 8 on 200 accounts, 2 repetitions
 *   npm run bench -- --reps N   N repetitions for every series
 *   npm run bench -- --only big only the series of one data set (corpus or big), or only cases 4-7 (cross), or only case 8 (users),
 *                               or only case 9 (remote: backup and sync over ssh, corpus, 3 repetitions; not in --quick
 *                               unless with --only remote, then 1 repetition), or only case 10 (server: backup over tcps to
 *                               mailferry server and to Dovecot's doveadm server, corpus, 3 repetitions; not in --quick unless
 *                               with --only server, then 1 repetition), or only case 11 (replication: 100 accounts, mailferry's
 *                               replicator and Dovecot 2.3's under a stream of deliveries, 10/s for 30 s, 2 repetitions; not in
 *                               --quick unless with --only replication, then 10 s and 1 repetition)
 *                               Or only the cost curve (curve: sync of the 100k account after 10, 100, 1,000 and
 *                               10,000 changes per side, mailferry and doveadm, one run per point; in the full run, not
 *                               in --quick), or only the million-message case (million: backup, sync and sync again of
 *                               1,000,000 generated messages by mailferry, peak RSS; only with --only million, see its
 *                               note; MAILFERRY_BENCH_MILLION_MESSAGES=N for another size)
 *   npm run bench -- --no-wait  do not wait out the slow file creation after a recent run's cleanup
 * Progress goes to stderr, the tables to stdout, everything to bench/results/latest.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { runSeries } from './cases.js';
import { dataset, type Dataset } from './data.js';
import { flushDisks, ForeignCpu, median, rssMethod, sleep } from './measure.js';
import { QUICK_MAILBOXES, runCrossSeries } from './cross-cases.js';
import { formatCross, summarizeCross, type CrossSeriesSummary } from './cross-report.js';
import { IMAP_COMMANDS } from './imap-cases.js';
import { formatUsers, runUsersSeries, summarizeUsers, USERS_COMMANDS, type UsersSeriesSummary } from './users-cases.js';
import { usersDataset } from './users-data.js';
import { formatReplication, replicationAllCorrect, REPLICATION_COMMANDS, runReplicationSeries, summarizeReplication, type ReplicationSeriesSummary } from './replication-cases.js';
import { formatRemote, remoteAllCorrect, REMOTE_COMMANDS, runRemoteSeries, summarizeRemote, type RemoteSeriesSummary } from './remote-cases.js';
import { formatServer, runServerSeriesIsolated, serverAllCorrect, SERVER_COMMANDS, summarizeServer, type ServerSeriesSummary } from './server-cases.js';
import { describeMbsync } from './mbsync.js';
import { CURVE_COMMANDS, formatCurve, runCurve, type CurveSummary } from './curve-cases.js';
import { formatMillion, MILLION_COMMANDS, millionMessages, runMillion, type MillionSummary } from './million-cases.js';
import { MBOX_COMMANDS } from './mbox-cases.js';
import { formatSeries, summarizeSeries, type SeriesSummary } from './report.js';
import { CLI, doveadmTool, findReferences, mailferry, type Fsync, type Tool } from './tools.js';
import { DATA_DIR, msUntilDeletionSettled, RECENT_DELETE_MS, retireWork } from './workspace.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const noWait = args.includes('--no-wait');
const valueOf = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
const repsArg = valueOf('--reps') === undefined ? undefined : Number(valueOf('--reps'));
const only = valueOf('--only');
const unknown = args.filter((a, i) => !['--quick', '--no-wait', '--reps', '--only'].includes(a) && !['--reps', '--only'].includes(args[i - 1]!));
if (unknown.length || (repsArg !== undefined && !(repsArg >= 1)) || (only !== undefined && !['corpus', 'big', 'cross', 'users', 'remote', 'server', 'replication', 'curve', 'million'].includes(only))) {
  console.error(`usage: node --import tsx bench/run.ts [--quick] [--reps N] [--only corpus|big|cross|users|remote|server|replication|curve|million] [--no-wait]   (bad: ${unknown.join(' ')})`);
  process.exit(64);
}

const allSeries: { data: Dataset['name']; fsync: Fsync; reps: number }[] = quick
  ? [{ data: 'corpus', fsync: 'never', reps: 3 }]
  : [
      { data: 'corpus', fsync: 'never', reps: 5 },
      { data: 'corpus', fsync: 'optimized', reps: 3 },
      // 100k with fsync on would take ~3 minutes per repetition for the two tools; left out.
      { data: 'big', fsync: 'never', reps: 3 },
    ];
const plan = allSeries.filter((p) => only === undefined || p.data === only);
// Cases 4-7 run on the corpus only: on the 100k account they would take longer than the rest of the run.
const crossPlan = only === undefined || only === 'corpus' || only === 'cross' ? [{ data: 'corpus' as const, reps: quick ? 3 : 5, subset: quick }] : [];
const usersPlan = only === undefined || only === 'users' ? [quick ? { users: 200, reps: 2, sample: 3 } : { users: 1000, reps: 3, sample: 6 }] : [];
// Case 9 takes over a minute even with one repetition, so --quick runs it only when asked for by --only remote.
const remotePlan = only === 'remote' || (only === undefined && !quick) ? [{ data: 'corpus' as const, reps: quick ? 1 : 3 }] : [];
// Case 10 likewise (about a minute per repetition).
const serverPlan = only === 'server' || (only === undefined && !quick) ? [{ data: 'corpus' as const, reps: quick ? 1 : 3 }] : [];
// Case 11 streams deliveries for a fixed time, so --quick runs it only when asked for by --only replication.
const replicationPlan = only === 'replication' || (only === undefined && !quick) ? [quick ? { users: 100, rate: 10, seconds: 10, reps: 1 } : { users: 100, rate: 10, seconds: 30, reps: 2 }] : [];

// The cost curve needs the 100k account and about 4 minutes, so --quick runs it only when asked for by --only curve.
const curvePlan = only === 'curve' || (only === undefined && !quick) ? [{ data: 'big' as const }] : [];
// The million-message case takes many minutes and a million files: only when asked for (its note says why).
const millionPlan = only === 'million' ? [{ messages: millionMessages() }] : [];

const log = (s: string) => process.stderr.write(`${s}\n`);
const out = (s = '') => process.stdout.write(`${s}\n`);
const firstLine = (cmd: string, a: string[]) => {
  const r = spawnSync(cmd, a, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '?';
};

/** Waits out the slow file creation after a recent deletion of bench files (or warns, with --no-wait). */
async function settleDeletions(env: { waitedAfterDeletionSeconds: number }): Promise<void> {
  const wait = msUntilDeletionSettled();
  if (wait > 0 && noWait) out(`- WARNING (--no-wait): bench files were deleted ${((RECENT_DELETE_MS - wait) / 1000).toFixed(0)} s ago; file creation, and so case 1, is slower than normal.`);
  if (wait > 0 && !noWait) {
    log(`waiting ${(wait / 1000).toFixed(0)} s: bench files were deleted recently, and on this journal-less ext4 file creation stays slow for ~6 minutes after (see bench/data.ts)`);
    await sleep(wait);
    env.waitedAfterDeletionSeconds += Math.round(wait / 1000);
  }
}

/** Dovecot's IMAP server is there (Debian: dovecot-imapd), for cases 5-7. */
function dovecotImapInstalled(): boolean {
  return ['/usr/lib/dovecot/imap', '/usr/libexec/dovecot/imap'].some((p) => existsSync(p));
}

/** What `node` costs before mailferry does anything: part of every mailferry time. */
function nodeStartupMs(): number {
  const runs = [0, 1, 2, 3, 4].map(() => {
    const t = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', '0']);
    return Number(process.hrtime.bigint() - t) / 1e6;
  });
  return median(runs);
}

async function main(): Promise<void> {
  const started = Date.now();
  const work = join(DATA_DIR, 'work');
  // Leftovers of an earlier run (a failed one keeps its copies) go to the trash, undeleted.
  if (existsSync(work)) log(`bench/data/work/ left by an earlier run: ${retireWork(work, 'quick')}`);
  const refs = await findReferences(log);
  const tools: Tool[] = [mailferry, ...(refs.dovecot ? [doveadmTool(refs.dovecot)] : [])];
  const env = {
    date: new Date().toISOString(),
    cpu: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    memoryGB: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    filesystem: firstLine('stat', ['-f', '-c', '%T', DATA_DIR.replace(/\/data$/, '')]),
    node: process.version,
    mailferry: firstLine(process.execPath, [CLI, '--version']),
    dovecot: refs.doveadmVersion ?? 'missing',
    mbsync: refs.mbsync ?? 'missing',
    dovecotImap: dovecotImapInstalled(),
    rss: rssMethod === 'gnu-time' ? '/usr/bin/time -f %M (ru_maxrss)' : '/proc/PID/status VmHWM polled every 10 ms',
    nodeStartupMs: +nodeStartupMs().toFixed(1),
    loadAverageAtStart: +loadavg()[0]!.toFixed(2),
    loadAverageAtEnd: NaN,
    waitedAfterDeletionSeconds: 0,
    otherProcessesCpuSeconds: 0,
  };
  const notes = [
    'Durability is equal on both sides of every table: mail_fsync=never means neither tool fsyncs (`-o mail_fsync=never` for both);' +
      ' mail_fsync=optimized is mailferry\'s default and `-o mail_fsync=optimized` for doveadm (each saved mail fsynced before it counts).',
    'Every repetition gives each tool its own fresh copy of one pristine master (written once by mailferry\'s store, no index of either tool in it)' +
      ' and an empty destination; message files are hard links into the master, metadata files are copies.',
    'Case 1 includes building each tool\'s index: doveadm writes dovecot.index*/dovecot.list.index* into both Maildirs as it goes, mailferry builds mailferry.index.sqlite in both.',
    'Cases run in order on the pair the previous case left; the tools alternate (order swapped every repetition); `sync` runs before each timed process, and each starts >= 2.5 s after the last write (as a periodic sync would).',
    `Times are of the tool process alone (spawn to exit). mailferry's include Node startup (${env.nodeStartupMs} ms for \`node -e 0\` here); doveadm's include its userdb lookup at the private Dovecot's auth socket.` +
      ' Beside each no-op case (2a-2c, 7, 8b, 8c) `node -e 0` is timed the same way just before each mailferry run; the line under the table (and beyondNodeStartMs of the case in the JSON) is mailferry\'s median beyond its median.',
    'Both tools run stateful: mailferry keeps its sync state in the stores (its default); doveadm gets `-s STATE` from its previous run on the pair (\'\' first).' +
      ' Without -s, doveadm\'s fast mode missed a mailbox in case 3 where both sides had made equally many changes (a limit documented in doveadm-sync(1)).',
    'A tool that exits 2 ("done, but run again"; both tools define it) is run again at once, up to 3 runs, and the case costs the sum; the table says when.',
    'Case 3: per side 1% of the account (40% new mail delivered into new/, 40% flag changes by rename, 20% expunges by unlink), on different messages per side, made behind both tools\' backs.',
    'Every run is checked (counts per flag/keyword per mailbox on disk, and `mailferry mailbox status` on both sides with a scratch index); wrong runs are excluded from the medians and reported.',
    `msg/s = messages in the account / median seconds. RSS = highest peak over the repetitions, via ${env.rss}.`,
    'Page cache: this VM pages out cold cache on its own (DAMON), so the source is read in before each case-1 run; the incremental cases run on whatever is cached.',
    'Measuring starts >= 6 min after the last deletion of bench files: on this journal-less ext4, file creation is 4-30x slower for minutes after mass deletes (see bench/data.ts);' +
      ' so finished runs\' copies are moved to bench/data/trash/, which is emptied only after a full run or every 5th run.' +
      ' CPU used by other processes during each series is measured; a table says when it was more than 5% of a CPU.',
    'Cases 4-7: every tool with mail_fsync=never (mailferry, doveadm `-o mail_fsync=never`, mbsync `FSync no`), and the IMAP server (a private Dovecot on 127.0.0.1,' +
      ' plaintext, no TLS, no COMPRESS) with mail_fsync=never. IMAP login is the LOGIN command for all (mailferry `auth=login`, mbsync `AuthMechs LOGIN`, doveadm imapc\'s default);' +
      ' mailferry reads the password from --password-file, mbsync from `Pass` in its private config, doveadm from -o imapc_password.',
    'Cases 4-7, state: each case 5 is a first migration (fresh Maildir, fresh mailferry IMAP state dir `state=`, fresh mbsync SyncState in the new Maildir);' +
      ' case 7 continues on that pair with that state. Every tool has its own IMAP accounts (src-TOOL seeded once per series from the master and read once by Dovecot, untimed;' +
      ' up-TOOL-rN empty, one per repetition). mbsync: `Expunge None` (the data has \\Deleted mail, which no other tool expunges), Maildir++ near side, `SyncState *`.',
    'Cases 4-7 are checked after every run: messages per mailbox on the destination (Maildir: on disk, with system-flag counts; mbox: `mailferry mailbox status` with a scratch index;' +
      ' IMAP: `doveadm mailbox status` on the server), and in case 6-7 on the other side too. Keywords are not compared: mbsync 1.4 does not carry them.' +
      ' An extra mailbox is allowed only when empty (doveadm imapc creates the \\Noselect parent "Lists" as a real, empty mailbox).',
    'doveadm is a reference for case 5 only: uploading with it (`doveadm backup -u U imapc:` from a Maildir into an empty account) stops at once with' +
      ' "mailbox_delete failed: INBOX can\'t be deleted" (exit 64) on Dovecot 2.3.19.1, and cases 6-7 name mbsync as their reference.',
    'CPU s = user+system CPU seconds of the tool process (GNU time); for the IMAP cases the server\'s CPU is in neither column.' +
      ' Case 4: doveadm\'s wall time is mostly sleep (about 1 s per mailbox in 0.5 s steps, then a utimensat on the mbox; strace), which no setting turns off: its CPU column is the other half of the story.',
    'Case 8: `backup -A -d` over one passwd-file of N accounts (20 corpus messages in 2 folders each, as in Dovecot\'s reference run), each with userdb_mail and userdb_mail_replica;' +
      ' both tools on their default mail_fsync (optimized). mailferry runs as root and takes each account\'s uid (nobody) per user, with -j left at its default (the cores);' +
      ' doveadm runs as nobody (setpriv) against a private auth-only Dovecot serving the same file, one user after another in one process (doveadm_worker_count 0).' +
      ' Every repetition gives each tool fresh copies of the accounts and empty replicas; neither tool\'s index is in the copies, so 8a includes building both sides\' indexes.' +
      ' Checked after every run: every account\'s source and replica (messages and flags per folder), and a sample of accounts deeper (UIDVALIDITY, UIDNEXT, mailbox GUID, the body at every UID).' +
      ' CPU s includes waited child processes (mailferry\'s workers); RSS is the largest single process.',
    'Case 9: backup and sync to a Maildir over ssh, through one throwaway sshd on 127.0.0.1 (test/support/sshd.ts; fresh keys, login as the user running the bench);' +
      ' 9a first backup into an empty far Maildir, 9b the same backup again, 9c sync after 1% changes on each side (as case 3). mail_fsync=never on both ends of both tools.' +
      ' mailferry runs `remote:LOGIN@127.0.0.1:maildir:DST` with dsync_remote_cmd running its dsync-server through that sshd, once with its default deflate and once with' +
      ' dsync_compression=none on both ends; doveadm runs `remote:LOGIN@127.0.0.1` with dsync_remote_cmd running `doveadm dsync-server -u alice` (the far DST as mail_location), its stream uncompressed.' +
      ' CPU local = the tool process and its waited children (the ssh client) by GNU time; CPU far = GNU time around the far command (sshd\'s own session process is in neither);' +
      ' ssh KiB = the ssh client\'s "Transferred:" count (encrypted bytes on the wire, -E FILE at LogLevel VERBOSE); "-" where none was logged (an ssh ended by a signal),' +
      ' and then far CPU may be missing too (the far GNU time ends with the connection). /dv = mailferry over doveadm (wall; CPU of both ends together).' +
      ' Checked after every run: tallies and `mailferry mailbox status` of both sides, and every body at every UID alike on both sides (doveadm alone may differ in carriage returns, counted and shown).',
    'Case 10: backup of the corpus over TLS (tcps:) to a long-running server on 127.0.0.1, as sites run dsync between hosts without ssh: 10a into an empty far Maildir, 10b the same backup again.' +
      ' mailferry: `mailferry server` (TLS certificate made with openssl, --secret-file, a passwd-file userdb, each session as nobody) and the CLI with `tcps:USER@127.0.0.1:PORT?cafile=CA`,' +
      ' once with deflate (the default) and once with dsync_compression=none on the client; doveadm: Dovecot\'s doveadm service with an inet_listener (ssl = yes) and doveadm_password,' +
      ' `doveadm backup -T 60 -s STATE -u USER tcps:127.0.0.1:PORT`. Every repetition sends as a new user, so each 10a writes into an empty home. mail_fsync=never on both ends of both tools.' +
      ' CPU client = the client process (GNU time); CPU server = the server\'s whole process tree during the run (its master and the per-connection processes it reaps, from /proc;' +
      ' mailferry\'s includes starting the spare session process it keeps for the next client, as Dovecot\'s process_min_avail would);' +
      ' loopback KiB = bytes over the loopback in both directions, headers included, counted in a network namespace of the series\' own (unshare -n); stream in/out = the decrypted bytes mailferry\'s server logs per session.' +
      ' Checked as case 9, and mailferry\'s server must log each session as ok.',
    'Case 11: continuous replication of 100 accounts (the case-8 accounts, 20 messages in 2 folders, with empty replicas on the same disk) by a long-running replicator;' +
      ' each tool\'s first full sync of every account is awaited, then RATE deliveries a second for the given time, every account once in random order before any twice.' +
      ' Dovecot: the reference recipe (dovecot-anchors.md case 4): LMTP into a primary with notify+replication plugins, aggregator and replicator, mail_replica = tcp: to a second instance\'s doveadm server.' +
      ' mailferry: `mailferry replicator` over a passwd-file userdb of the same accounts with local Maildir replicas, fed once by file delivery (tmp/ then a rename into new/, as an MDA) and once by' +
      ' the same Dovecot LMTP (without replication) into the same kind of Maildir. Every setting at its default on both sides (mail_fsync=optimized, 10 syncs at once).' +
      ' Latency = from the delivery returning (the rename; LMTP\'s 250 to DATA) to the replica INBOX holding one more file (inotify on its new/ and cur/, a 20 ms poll behind it); p50/p99 nearest-rank over all arrivals.' +
      ' CPU = user+system of every process of the replication from cpuacct cgroups, during the stream and 2 s after its last arrival: Dovecot\'s replicator, aggregator and doveadm-server on both ends;' +
      ' mailferry\'s daemon and its workers. LMTP\'s CPU is counted apart (it is the delivery); the Dovecot masters, auth and log processes are in neither. ms/msg = CPU / messages arrived.' +
      ' Checked after every run: every account\'s source and replica hold the same messages and flags per folder, 20 + the messages delivered to it.',
    'Cost curve: a two-way sync of the 100k account after N changes on each side (N = 10, 100, 1,000, 10,000: new mail, flag changes and expunges as in case 3), mail_fsync=never, one run per point.' +
      ' Each tool first backs up and syncs its own pair once; every point then gets fresh copies of that pair (message files hard-linked, the rest, the tool\'s index among them, copied; doveadm with the state string of that first sync), synced once untimed so the tool has seen the copy\'s new directories, then changed, then timed.' +
      ' Checked after every point as case 3 is. Time should grow with N, not with the account.',
    'Million: 1,000,000 generated messages of a few hundred bytes in 6 folders (one holds 700,000), built once by bench/million-data.ts; mailferry alone backs it up into an empty Maildir, syncs the pair and syncs it again, mail_fsync=never, one run each.' +
      ' Its goal is a peak RSS under 1 GB; RSS bytes / message is peak RSS over the messages, Node\'s own start included. Checked after every run as the other cases are.' +
      ' It runs only with --only million: writing and checking a million files takes many minutes on this disk.',
    ...(quick ? ['Quick mode: corpus with mail_fsync=never only, cases 4-7 on a third of the corpus; `npm run bench` adds mail_fsync=optimized, the 100k account, and cases 4-7 on the whole corpus.']
      : ['The 100k account runs with mail_fsync=never only: with fsync on, case 1 alone takes minutes per tool and repetition here.']),
    ...refs.notes,
  ];
  out(`mailferry benchmark (${quick ? 'quick' : 'full'}) ${env.date}`);
  out(`machine: ${env.cpu}, ${env.memoryGB} GB RAM, Linux ${env.kernel}, ${env.filesystem}; node ${env.node}; mailferry ${env.mailferry}; Dovecot ${env.dovecot}; mbsync ${env.mbsync}`);
  for (const n of notes) out(`- ${n}`);
  out();

  const series: SeriesSummary[] = [];
  const crossSeries: CrossSeriesSummary[] = [];
  const usersSeries: UsersSeriesSummary[] = [];
  const remoteSeries: RemoteSeriesSummary[] = [];
  const replicationSeries: ReplicationSeriesSummary[] = [];
  const serverSeries: ServerSeriesSummary[] = [];
  const curveSeries: CurveSummary[] = [];
  const millionSeries: MillionSummary[] = [];
  try {
    for (const p of plan) {
      const ds = await dataset(p.data, log);
      await settleDeletions(env);
      const foreign = new ForeignCpu();
      foreign.start();
      const reps = repsArg ?? p.reps;
      log(`series ${p.data} mail_fsync=${p.fsync}, ${reps} repetitions (${tools.map((t) => t.id).join(', ')})`);
      const seriesStart = Date.now();
      const { samples, changesPerSide } = await runSeries(ds, p.fsync, reps, tools, log);
      const s = summarizeSeries(ds, p.fsync, reps, samples, changesPerSide);
      s.otherCpu = { seconds: +foreign.stop().toFixed(1), wallSeconds: Math.round((Date.now() - seriesStart) / 1000) };
      env.otherProcessesCpuSeconds += s.otherCpu.seconds;
      series.push(s);
      out(formatSeries(s, !refs.dovecot));
      out();
    }
    for (const p of crossPlan) {
      const ds = await dataset(p.data, log);
      // Cases 4-6 create a file per message too.
      await settleDeletions(env);
      const foreign = new ForeignCpu();
      foreign.start();
      const reps = repsArg ?? p.reps;
      log(`series ${p.data} cases 4-7, ${reps} repetitions (mailferry${refs.dovecot ? ', doveadm' : ''}${refs.mbsync ? ', mbsync' : ''})`);
      const seriesStart = Date.now();
      const r = await runCrossSeries({
        ds, reps, subset: p.subset ? QUICK_MAILBOXES : undefined, doveadm: refs.dovecot,
        imapServer: !!refs.dovecot && env.dovecotImap, mbsync: !!refs.mbsync, log,
      });
      const s = summarizeCross(ds, reps, r);
      s.otherCpu = { seconds: +foreign.stop().toFixed(1), wallSeconds: Math.round((Date.now() - seriesStart) / 1000) };
      env.otherProcessesCpuSeconds += s.otherCpu.seconds;
      crossSeries.push(s);
      out(formatCross(s));
      out();
    }
    for (const p of usersPlan) {
      const ds = await usersDataset(p.users, log);
      await settleDeletions(env);
      const foreign = new ForeignCpu();
      foreign.start();
      const reps = repsArg ?? p.reps;
      log(`series case 8, ${p.users} accounts, ${reps} repetitions (mailferry${refs.dovecot ? ', doveadm' : ''})`);
      const seriesStart = Date.now();
      const r = await runUsersSeries({ ds, reps, doveadm: !!refs.dovecot, sampleSize: p.sample, log });
      const s = summarizeUsers(ds, reps, r);
      s.otherCpu = { seconds: +foreign.stop().toFixed(1), wallSeconds: Math.round((Date.now() - seriesStart) / 1000) };
      env.otherProcessesCpuSeconds += s.otherCpu.seconds;
      usersSeries.push(s);
      out(formatUsers(s, !refs.dovecot));
      out();
    }
    for (const p of remotePlan) {
      const ds = await dataset(p.data, log);
      // 9a creates a file per message on the far side.
      await settleDeletions(env);
      const foreign = new ForeignCpu();
      foreign.start();
      const reps = repsArg ?? p.reps;
      log(`series ${p.data} case 9 over ssh, ${reps} repetitions (mailferry, mailferry dsync_compression=none${refs.dovecot ? ', doveadm' : ''})`);
      const seriesStart = Date.now();
      const r = await runRemoteSeries({ ds, reps, dovecot: refs.dovecot, log });
      const s = summarizeRemote(ds, reps, r);
      s.otherCpu = { seconds: +foreign.stop().toFixed(1), wallSeconds: Math.round((Date.now() - seriesStart) / 1000) };
      env.otherProcessesCpuSeconds += s.otherCpu.seconds;
      remoteSeries.push(s);
      out(formatRemote(s));
      out();
    }
    for (const p of serverPlan) {
      const ds = await dataset(p.data, log);
      // 10a creates a file per message on the far side.
      await settleDeletions(env);
      const foreign = new ForeignCpu();
      foreign.start();
      const reps = repsArg ?? p.reps;
      log(`series ${p.data} case 10 over tcps, ${reps} repetitions (mailferry, mailferry dsync_compression=none${refs.dovecot ? ', doveadm' : ''})`);
      const seriesStart = Date.now();
      const r = await runServerSeriesIsolated({ ds, reps, doveadm: !!refs.dovecot, log });
      const s = summarizeServer(ds, reps, r);
      s.otherCpu = { seconds: +foreign.stop().toFixed(1), wallSeconds: Math.round((Date.now() - seriesStart) / 1000) };
      env.otherProcessesCpuSeconds += s.otherCpu.seconds;
      serverSeries.push(s);
      out(formatServer(s));
      out();
    }
    for (const p of replicationPlan) {
      const ds = await usersDataset(p.users, log);
      // Each tool's copy of the accounts and their replicas are a file per message.
      await settleDeletions(env);
      const foreign = new ForeignCpu();
      foreign.start();
      const reps = repsArg ?? p.reps;
      log(`series case 11, replication of ${p.users} accounts, ${p.rate} deliveries/s for ${p.seconds} s, ${reps} repetitions (mailferry${refs.dovecot ? ', mailferry over Dovecot LMTP, Dovecot' : ''})`);
      const seriesStart = Date.now();
      const r = await runReplicationSeries({ ds, reps, rate: p.rate, seconds: p.seconds, dovecot: !!refs.dovecot, log });
      const s = summarizeReplication(reps, r);
      s.otherCpu = { seconds: +foreign.stop().toFixed(1), wallSeconds: Math.round((Date.now() - seriesStart) / 1000) };
      env.otherProcessesCpuSeconds += s.otherCpu.seconds;
      replicationSeries.push(s);
      out(formatReplication(s));
      out();
    }
    for (const p of curvePlan) {
      const ds = await dataset(p.data, log);
      // Each point copies both sides of a pair and adds mail: files are created.
      await settleDeletions(env);
      const foreign = new ForeignCpu();
      foreign.start();
      log(`series cost curve on ${p.data}, one run per point (${tools.map((t) => t.id).join(', ')})`);
      const seriesStart = Date.now();
      const s = await runCurve({ ds, tools, log });
      s.otherCpu = { seconds: +foreign.stop().toFixed(1), wallSeconds: Math.round((Date.now() - seriesStart) / 1000) };
      env.otherProcessesCpuSeconds += s.otherCpu.seconds;
      curveSeries.push(s);
      out(formatCurve(s));
      out();
    }
    for (const p of millionPlan) {
      await settleDeletions(env);
      const foreign = new ForeignCpu();
      foreign.start();
      log(`series million: ${p.messages} messages, backup, sync and sync again (mailferry)`);
      const seriesStart = Date.now();
      const s = await runMillion({ messages: p.messages, log });
      s.otherCpu = { seconds: +foreign.stop().toFixed(1), wallSeconds: Math.round((Date.now() - seriesStart) / 1000) };
      env.otherProcessesCpuSeconds += s.otherCpu.seconds;
      millionSeries.push(s);
      out(formatMillion(s));
      out();
    }
  } finally {
    await refs.dovecot?.stop();
  }
  env.loadAverageAtEnd = +loadavg()[0]!.toFixed(2);
  out(`load average ${env.loadAverageAtStart} at start, ${env.loadAverageAtEnd} at end; other processes used ${env.otherProcessesCpuSeconds.toFixed(1)} CPU-s during the series; waited ${env.waitedAfterDeletionSeconds} s after a recent cleanup`);
  const commands = {
    ...Object.fromEntries(tools.flatMap((t) => (['backup', 'sync'] as const).map((op) => [`${t.id} ${op}`, t.describe(op, 'never')]))),
    'case 4 mailferry': MBOX_COMMANDS.mailferry, 'case 4 doveadm': MBOX_COMMANDS.doveadm,
    'case 5 mailferry': IMAP_COMMANDS.mailferry5, 'case 5 mbsync': describeMbsync('pull'), 'case 5 doveadm': IMAP_COMMANDS.doveadm5,
    'case 6 mailferry': IMAP_COMMANDS.mailferry6, 'case 6 mbsync': describeMbsync('push'),
    'case 7 mailferry': IMAP_COMMANDS.mailferry7, 'case 7 mbsync': describeMbsync('both'),
    'case 8 mailferry': USERS_COMMANDS.mailferry, 'case 8 doveadm': USERS_COMMANDS.doveadm,
    'case 9 mailferry': REMOTE_COMMANDS.mailferry, 'case 9 mailferry dsync_compression=none': REMOTE_COMMANDS['mailferry-nocomp'], 'case 9 doveadm': REMOTE_COMMANDS.doveadm,
    'case 10 mailferry': SERVER_COMMANDS.mailferry, 'case 10 mailferry dsync_compression=none': SERVER_COMMANDS['mailferry-nocomp'], 'case 10 doveadm': SERVER_COMMANDS.doveadm,
    'case 11 mailferry': REPLICATION_COMMANDS.mailferry, 'case 11 dovecot': REPLICATION_COMMANDS.dovecot,
    'curve mailferry': CURVE_COMMANDS.mailferry, 'curve doveadm': CURVE_COMMANDS.doveadm, 'million mailferry': MILLION_COMMANDS.mailferry,
  };
  const result = { mode: quick ? 'quick' : 'full', env, notes, commands, series, crossSeries, usersSeries, remoteSeries, serverSeries, replicationSeries, curve: curveSeries, million: millionSeries, wallSeconds: (Date.now() - started) / 1000 };
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  out(`written bench/results/latest.json; whole run ${result.wallSeconds.toFixed(0)} s`);
  const wrong = series.some((s) => s.cases.some((c) => [c.mailferry, c.doveadm].some((t) => t && t.correct < t.runs)))
    || crossSeries.some((s) => s.rows.some((r) => [r.mailferry, r.ref].some((t) => t && t.correct < t.runs)))
    || usersSeries.some((s) => s.cases.some((c) => [c.mailferry, c.doveadm].some((t) => t && t.correct < t.runs)))
    || remoteSeries.some((s) => !remoteAllCorrect(s))
    || serverSeries.some((s) => !serverAllCorrect(s))
    || replicationSeries.some((s) => !replicationAllCorrect(s))
    || curveSeries.some((s) => !s.allCorrect)
    || millionSeries.some((s) => !s.allCorrect);
  // A failed repetition's copies stay under bench/data/work/ for inspection.
  if (wrong) {
    out('SOME RUNS WERE WRONG: see the lines marked WRONG; their copies are under bench/data/work/');
    process.exitCode = 1;
  } else {
    log(`this run's copies: ${retireWork(work, quick ? 'quick' : 'full')}`);
    flushDisks();
  }
}

await main();
