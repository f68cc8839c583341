/**
 * backup, backup -R and sync through the CLI with a remote: location served by `mailferry
 * dsync-server` as a local command: mail and metadata arrive, a second run has nothing to do,
 * -r writes a readable trace, --json and --dry-run work, and every failure of the far side
 * keeps its exit status with the host in front.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROTOCOL_VERSION } from '../../src/remote/hello.js';
import { openStore } from '../../src/storage/open-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { snapshot } from './mail-snapshot.js';
import { CLI, mf, script, SERVER_CMD } from './remote-cli-support.js';

const open = (location: string) => openStore(location, { create: true, fsync: false, warn: () => {} });
const FOLDERS = [['INBOX'], ['Sent Items'], ['Entwürfe'], ['Work', 'Q3']];

async function fill(location: string, bodies: Buffer[]): Promise<void> {
  const s = await open(location);
  for (const f of FOLDERS.slice(1)) await s.createMailbox(f);
  await s.setSubscribed(['Sent Items'], true);
  for (let i = 0; i < FOLDERS.length; i++) {
    const mine = bodies.filter((_, j) => j % FOLDERS.length === i);
    await s.saveMessages(FOLDERS[i]!, mine.map((b, k) => req(b, { flags: k % 4 === 0 ? ['\\Seen'] : [], keywords: k % 7 === 0 ? ['$Label1'] : [] })));
  }
  await s.close();
}

async function view(location: string, guids = true) {
  const s: MailStore = await open(location);
  try {
    return await snapshot(s, { guids });
  } finally {
    await s.close();
  }
}

describe('cli: backup and sync with a remote: location (dsync-server as a local command)', () => {
  let dir: string;
  let bodies: Buffer[];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-remote-cli-'));
    bodies = corpusMessages(400);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('backup to remote:HOST:maildir, a no-op second run, then changes; -r writes a trace', async () => {
    const src = `maildir:${join(dir, 'a src')}:LAYOUT=fs`;
    const dst = `maildir:${join(dir, 'a dst')}:LAYOUT=fs`;
    await fill(src, bodies);
    const rawlog = join(dir, 'a.rawlog');
    let r = mf(['backup', '-r', rawlog, src, `remote:testhost:${dst}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(dst), await view(src));
    const trace = readFileSync(rawlog, 'utf8');
    assert.match(trace, /hello received: MAILFERRY 1\.\d/);
    assert.match(trace, /> Request \d+ \{"op":"listMailboxes"/);
    assert.match(trace, /< Data \d+ \d+ bytes|> Data \d+ \d+ bytes/);

    r = mf(['backup', '--json', src, `remote:testhost:${dst}`]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { saved: number; skipped: number };
    assert.equal(json.saved, 0);
    assert.equal(json.skipped, FOLDERS.length);

    const s = await open(src);
    const inbox = await s.getMessages(['INBOX']);
    await s.updateFlags(['INBOX'], [{ uid: inbox.messages[0]!.uid, flags: ['\\Flagged'], keywords: ['work'] }]);
    await s.expunge(['INBOX'], [inbox.messages[1]!.uid]);
    await s.renameMailbox(['Work', 'Q3'], ['Archive']);
    await s.close();
    r = mf(['backup', '--dry-run', src, `remote:testhost:${dst}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /rename mailbox Work\/Q3 -> Archive/);
    assert.notDeepEqual(await view(dst), await view(src), 'a dry run changes nothing');
    r = mf(['backup', '-v', src, `remote:testhost:${dst}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(dst), await view(src));
  });

  it('backup -R pulls from the remote into a local mbox', async () => {
    const far = `maildir:${join(dir, 'b far')}`;
    const here = `mbox:${join(dir, 'b here')}`;
    await fill(far, bodies.slice(0, 120));
    const r = mf(['backup', '-R', here, `remote:testhost:${far}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(here, false), await view(far, false));
  });

  it('sync with a remote mbox: changes on both sides meet, a second sync finds nothing', async () => {
    const a = `maildir:${join(dir, 'c a')}:LAYOUT=fs`;
    const b = `mbox:${join(dir, 'c b')}`;
    await fill(a, bodies.slice(0, 100));
    let r = mf(['sync', a, `remote:testhost:${b}`]);
    assert.equal(r.code, 0, r.stderr);
    const bs = await open(b);
    const bInbox = await bs.getMessages(['INBOX']);
    await bs.updateFlags(['INBOX'], [{ uid: bInbox.messages[0]!.uid, flags: ['\\Answered'], keywords: [] }]);
    await bs.saveMessages(['Sent Items'], [req(bodies[300]!)]);
    await bs.close();
    const as = await open(a);
    await as.expunge(['INBOX'], [(await as.getMessages(['INBOX'])).messages[3]!.uid]);
    await as.saveMessages(['Entwürfe'], [req(bodies[301]!)]);
    await as.close();
    r = mf(['sync', a, `remote:testhost:${b}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await view(b, false), await view(a, false));
    r = mf(['sync', '--json', a, `remote:testhost:${b}`]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { saved: number; expunged: number; flagUpdates: number };
    assert.equal(json.saved + json.expunged + json.flagUpdates, 0);
  });

  it('far side errors keep their kind: a missing mailbox 65, permission 77, each naming the host', async () => {
    const far = `maildir:${join(dir, 'd far')}`;
    await fill(far, bodies.slice(0, 8));
    let r = mf(['backup', '-R', '-m', 'Nope', `maildir:${join(dir, 'd here')}`, `remote:testhost:${far}`]);
    assert.equal(r.code, 65, r.stderr);
    assert.match(r.stderr, /Nope/);

    // The far side runs as nobody and cannot enter a root-only directory.
    const locked = join(dir, 'd locked');
    mkdirSync(locked, { mode: 0o700 });
    chmodSync(locked, 0o700);
    const asNobody = `setpriv --reuid=65534 --regid=65534 --clear-groups ${SERVER_CMD}`;
    r = mf(['backup', `maildir:${join(dir, 'd far')}`, `remote:testhost:maildir:${locked}/Maildir`], asNobody);
    assert.equal(r.code, 77, r.stderr);
    assert.match(r.stderr, /mailferry: error: remote testhost: .*permission denied/);
    assert.deepEqual(readdirSync(locked), []);
  });

  it('a far command that cannot run, fails before the handshake, or is not mailferry', async () => {
    const src = `maildir:${join(dir, 'e src')}`;
    await fill(src, bodies.slice(0, 3));
    const target = `remote:testhost:maildir:${join(dir, 'e dst')}`;
    let r = mf(['backup', src, target], '/nonexistent/mailferry dsync-server');
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /remote testhost: .*not found/);

    r = mf(['backup', src, target], script(dir, 'refused.sh', 'echo "ssh: connect to host testhost port 22: Connection refused" >&2; exit 255'));
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /^testhost: ssh: connect to host testhost port 22: Connection refused$/m);
    assert.match(r.stderr, /mailferry: error: remote testhost: .*exited with status 255/);

    r = mf(['backup', src, target], script(dir, 'missing.sh', 'echo "sh: 1: mailferry: not found" >&2; exit 127'));
    assert.equal(r.code, 78, r.stderr);

    r = mf(['backup', src, target], script(dir, 'banner.sh', 'echo "Welcome to testhost"; cat >/dev/null'));
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /Welcome to testhost/);

    r = mf(['backup', src, target], script(dir, 'future.sh', `printf 'MAILFERRY\\t2.7\\tdeflate,x\\n'; cat >/dev/null`));
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, new RegExp(`protocol 2\\.7 and this mailferry speaks ${PROTOCOL_VERSION.replace('.', '\\.')}`));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);

    // `cat` sends our own hello back: not a store, whatever comes after it.
    r = mf(['backup', '-T', '20', src, target], script(dir, 'echo.sh', 'exec cat'));
    assert.equal(r.code, 78, r.stderr);
    assert.deepEqual(r.stderr.trim().split('\n'), [
      "mailferry: error: remote testhost: the peer sent back our own hello: the far command echoes its input instead of serving a store (is dsync_remote_cmd right, and does it run 'mailferry dsync-server' on the far side?)",
    ]);
    assert.ok(!existsSync(join(dir, 'e dst')));
  });

  it('--dry-run to a far location that does not exist yet plans against an empty store and makes nothing there; a missing far source is 65', async () => {
    const src = `maildir:${join(dir, 'n src')}`;
    await fill(src, bodies.slice(0, 6));
    const far = `maildir:${join(dir, 'n far')}/Mail dir`;
    for (const command of ['backup', 'sync']) {
      const here = `maildir:${join(dir, 'n here')}`;
      const local = mf([command, '--dry-run', src, here]);
      assert.equal(local.code, 0, local.stderr);
      const r = mf([command, '--dry-run', src, `remote:testhost:${far}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        [r.stdout, r.stderr.replaceAll(`remote:testhost:${far}`, 'DEST')],
        [local.stdout, local.stderr.replaceAll(here, 'DEST')],
        `${command}: the plan of a local dry run to a missing destination`,
      );
    }
    assert.match(mf(['backup', '--dry-run', src, `remote:testhost:${far}`]).stdout, /^create mailbox Sent Items$/m);
    assert.ok(!existsSync(join(dir, 'n far')) && !existsSync(join(dir, 'n here')), 'nothing was made on either side');

    // Read from, it is no empty store: the far side says it does not exist.
    const r = mf(['backup', '-R', '--dry-run', src, `remote:testhost:${far}`]);
    assert.equal(r.code, 65, r.stderr);
    assert.deepEqual(r.stderr.trim().split('\n'), [`mailferry: error: remote testhost: ${far} does not exist`]);
  });

  it('a far mailferry that refuses before the protocol keeps its own status and message; anything else is 75', async () => {
    const src = `maildir:${join(dir, 'e2 src')}`;
    await fill(src, bodies.slice(0, 3));
    const target = `remote:testhost:maildir:${join(dir, 'e2 dst')}`;
    const own = (r: { stderr: string }) => r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('testhost: '));
    for (const [status, message] of [
      [64, 'dsync-server needs LOCATION, -u USER, or -o mail_location=LOCATION'],
      [65, 'maildir:/srv/mail/x: no such file or directory'],
      [67, 'unknown user bob (passwd-file /etc/mail/users)'],
      [77, 'user bob: the mail belongs to uid 1001 and mailferry runs as uid 1000: run as root or as that user'],
      [78, 'settings: unknown setting mail_locaton in /etc/mailferry/mailferry.toml'],
    ] as const) {
      const r = mf(['backup', src, target], script(dir, `refuse-${status}.sh`, `echo 'mailferry: error: ${message}' >&2; exit ${status}`));
      assert.equal(r.code, status, r.stderr);
      assert.match(r.stderr, new RegExp(`^testhost: mailferry: error: `, 'm'), 'the far line is shown as it came');
      assert.deepEqual(own(r), [`mailferry: error: remote testhost: ${message}`]);
    }
    // The far CLI's pointer to its own --help is dropped.
    let r = mf(['backup', src, target], script(dir, 'refuse-usage.sh', `echo "mailferry: error: unknown option '-q' (run mailferry --help for usage)" >&2; exit 64`));
    assert.equal(r.code, 64, r.stderr);
    assert.deepEqual(own(r), [`mailferry: error: remote testhost: unknown option '-q'`]);

    // Not mailferry's: a status of its own with other words, ssh's 255, a signal, a refusal
    // after the handshake, a status mailferry never gives.
    for (const [name, body] of [
      ['other-words', `echo 'disk quota exceeded' >&2; exit 78`],
      ['ssh', `echo 'mailferry: error: not really' >&2; exit 255`],
      ['signal', `echo 'mailferry: error: about to go' >&2; kill -9 $$`],
      ['after-hello', `printf 'MAILFERRY\\t1.0\\t\\n'; sleep 1; echo 'mailferry: error: late' >&2; exit 78`],
      ['odd-status', `echo 'mailferry: error: odd' >&2; exit 66`],
      ['more-after', `echo 'mailferry: error: first' >&2; echo 'then something else' >&2; exit 77`],
    ] as const) {
      r = mf(['backup', src, target], script(dir, `not-refusal-${name}.sh`, body));
      assert.equal(r.code, 75, `${name}: ${r.stderr}`);
      assert.equal(own(r).length, 1, r.stderr);
    }
    assert.ok(!existsSync(join(dir, 'e2 dst')));
  });

  it('a far side that stops answering fails the run with 75 after -T seconds', () => {
    const started = Date.now();
    const silent = script(dir, 'silent.sh', `printf 'MAILFERRY\\t1.0\\t\\n'; exec sleep 60`);
    const r = mf(['backup', '-T', '1', `maildir:${join(dir, 'e src')}`, `remote:testhost:maildir:${join(dir, 'f dst')}`], silent);
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /remote testhost: I\/O has stalled for 1 seconds/);
    assert.ok(Date.now() - started < 20_000);
  });

  it('the far side takes the run lock (-l): a held lock there makes the run wait, then fail with 75', async () => {
    const far = join(dir, 'g far');
    await fill(`maildir:${far}`, bodies.slice(0, 3));
    const { acquireRunLocks } = await import('../../src/cli/run-lock.js');
    const release = await acquireRunLocks([{ dir: far, mayCreate: false }], 1);
    try {
      const r = mf(['backup', '-l', '1', `maildir:${join(dir, 'e src')}`, `remote:testhost:maildir:${far}`]);
      assert.equal(r.code, 75, r.stderr);
      assert.match(r.stderr, /remote testhost: another run on this pair holds/);
    } finally {
      release();
    }
    const r = mf(['backup', '-l', '1', `maildir:${join(dir, 'e src')}`, `remote:testhost:maildir:${far}`]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('remoteprefix: the user name and a line end come first, for a wrapper on the far side; sync -1 through it', async () => {
    const a = `maildir:${join(dir, 'h a')}`;
    const b = `maildir:${join(dir, 'h b')}`;
    await fill(a, bodies.slice(0, 20));
    await fill(b, bodies.slice(20, 30));
    const before = await view(a);
    const seen = join(dir, 'h.user');
    // What a trusted wrapper does: read the user, decide, then hand the stream to mailferry.
    const wrapper = script(dir, 'prefix.sh', `read user\necho "$user" > '${seen}'\nexec ${SERVER_CMD} "$@"`);
    const r = mf(['sync', '-1', a, `remoteprefix:testhost:${b}`], wrapper);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(seen, 'utf8').trim(), userInfo().username);
    const after = await view(b, false);
    assert.equal(Object.values(after).flat().length, 30, 'sync -1 adds what the source has and deletes nothing');
    assert.deepEqual(await view(a), before, 'the source is left as it was');
  });

  it('dsync-server -r writes the far side of the traffic; dsync_compression=none is plain', async () => {
    const src = `maildir:${join(dir, 'i src')}`;
    await fill(src, bodies.slice(0, 5));
    const log = join(dir, 'i.far.rawlog');
    const r = mf(['-o', 'dsync_compression=none', 'backup', src, `remote:testhost:maildir:${join(dir, 'i-dst')}`], `${SERVER_CMD} -r ${log}`);
    assert.equal(r.code, 0, r.stderr);
    const trace = readFileSync(log, 'utf8');
    assert.match(trace, /connected: peer speaks 1\.\d \[listing-delta\]/, 'the client offered no deflate');
    assert.match(trace, /< Request \d+ \{"op":"open"/);
    assert.match(trace, /< Item \d+ /);
    assert.doesNotMatch(trace, /deflate on/);
  });

  it("remote:HOST alone: the far side serves -u USER's mail from its userdb, with that user's uid", async () => {
    const src = `maildir:${join(dir, 'j src')}`;
    await fill(src, bodies.slice(0, 6));
    const home = join(dir, 'j-home');
    chmodSync(dir, 0o755);
    mkdirSync(home);
    chownSync(home, 65534, 65534);
    const users = join(dir, 'j.users');
    writeFileSync(users, `alice:x:65534:65534::${home}::userdb_mail=maildir:~/Maildir\n`);
    const far = `${process.execPath} ${CLI} -o mail_fsync=never -o userdb=passwd-file:${users} -o first_valid_uid=1000 dsync-server -ualice`;
    const r = mf(['backup', src, 'remote:testhost'], far);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(join(home, 'Maildir', 'cur')).uid, 65534, 'the far side wrote as the user');
    assert.deepEqual(await view(`maildir:${join(home, 'Maildir')}`), await view(src));
  });

  it('dsync-server alone: no location is a usage error; -u of an unknown user is 67', () => {
    const none = mf(['dsync-server']);
    assert.equal(none.code, 64, none.stderr);
    const unknown = mf(['-o', 'userdb=passwd-file:/dev/null', 'dsync-server', '-u', 'nosuchuser']);
    assert.equal(unknown.code, 67, unknown.stderr);
    assert.ok(CLI);
  });
});
