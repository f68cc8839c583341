/**
 * The Dovecot path end to end: a real Dovecot 2.3 with `mail_plugins = notify replication`,
 * whose base_dir/replication-notify socket and replication-notify-fifo are the replicator's
 * (Dovecot's own aggregator moved aside with `path =`), and a `mailferry replicator` of the
 * built CLI that watches nobody and checks once an hour, so only Dovecot's notices move mail.
 *
 * - n1 has replication_sync_timeout: a message saved over IMAP is a sync request on the socket,
 *   and APPEND returns once the replicator answered, with the message in the replica.
 * - n2 has none: new mail (IMAP APPEND, and an LMTP delivery when dovecot-lmtpd is installed)
 *   comes as `high` through the fifo, a flag change over IMAP as `low`.
 * - Garbage and over-long lines on the socket and the fifo leave the replicator serving.
 * - The other way in: Dovecot's own aggregator keeps the plugin's socket and fifo and forwards
 *   to the replicator socket its replicator_host names, the replicator's, in the aggregator's
 *   dialect (VERSION line, U lines, sync requests with ids).
 * - Restarts: the fifo stays and the next mail process's notices arrive; mail saved while the
 *   replicator was down is found by the check at its start; the aggregator connects again.
 *
 * The replica is read from disk (Message-ID and flag letters), sharing no code with mailferry.
 */
import { strict as assert } from 'node:assert';
import { closeSync, constants, existsSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { after, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { startDovecot, type Dovecot } from '../support/dovecot.js';
import { holdings, makeReplicaSite, ROOT, sleep, startReplicator, until, type Replicator } from './replica-site.js';

const LMTP = existsSync('/usr/lib/dovecot/lmtp');

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

function message(tag: string): { id: string; text: string } {
  const id = `<${tag}.${Date.now()}.${process.pid}@notify.test>`;
  return { id, text: `From: a@example.com\r\nTo: b@example.com\r\nSubject: ${tag}\r\nMessage-ID: ${id}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n${tag}\r\n` };
}

/** One LMTP delivery, as an MTA makes it. */
async function lmtpDeliver(port: number, rcpt: string, text: string): Promise<void> {
  const s = connect(port, '127.0.0.1');
  let buf = '';
  const waiters: ((line: string) => void)[] = [];
  s.on('data', (d) => {
    buf += d.toString();
    for (let nl = buf.indexOf('\r\n'); nl >= 0; nl = buf.indexOf('\r\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (/^\d{3} /.test(line)) waiters.shift()?.(line);
    }
  });
  const reply = () => new Promise<string>((resolve) => waiters.push(resolve));
  const step = async (send: string | undefined, code: string) => {
    const r = reply();
    if (send !== undefined) s.write(send);
    const line = await r;
    assert.ok(line.startsWith(code), `LMTP ${JSON.stringify(send)}: ${line}`);
  };
  try {
    await step(undefined, '220');
    await step('LHLO notify.test\r\n', '250');
    await step('MAIL FROM:<a@example.com>\r\n', '250');
    await step(`RCPT TO:<${rcpt}>\r\n`, '250');
    await step('DATA\r\n', '354');
    await step(`${text}.\r\n`, '250');
    await step('QUIT\r\n', '221');
  } finally {
    s.destroy();
  }
}

async function imap(d: Dovecot, user: string, pass: string, fn: (c: ImapFlow) => Promise<void>): Promise<void> {
  const c = new ImapFlow({ host: '127.0.0.1', port: d.port, secure: false, doSTARTTLS: false, auth: { user, pass }, logger: false });
  await c.connect();
  try {
    await fn(c);
  } finally {
    await c.logout().catch(() => c.close());
  }
}

function inReplica(replica: string, id: string): string | undefined {
  return holdings(replica).byId.get(id);
}

function writeFifo(path: string, data: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

function rawSocket(path: string, data: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(path);
    let got = '';
    s.on('data', (b) => {
      got += b.toString();
      // An answer is one line; the plugin closes after reading it.
      if (got.endsWith('\n')) s.destroy();
    });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.on('connect', () => s.write(data));
  });
}

const site = makeReplicaSite({ users: 2, prefix: 'n', messages: 2 });
let dovecot: Dovecot | undefined;
let replicator: Replicator | undefined;
after(async () => {
  replicator?.child.kill('SIGKILL');
  await dovecot?.stop();
  site.stop();
});

/** n1 waits for its new mail to be replicated (the plugin's sync request), n2 does not. */
async function giveUsersTimeouts(d: Dovecot): Promise<void> {
  const file = `${d.root}/users`;
  writeFileSync(file, `n1:{PLAIN}${d.users.n1}::::::userdb_replication_sync_timeout=10\nn2:{PLAIN}${d.users.n2}::::::\n`);
  // Dovecot looks at the file again at most once a second.
  for (let tries = 0; ; tries++) {
    const shown = await d.doveadm(['user', 'n1']);
    if (/replication_sync_timeout\s+10/.test(shown)) break;
    if (tries === 20) assert.fail(`doveadm user n1 does not show the timeout:\n${shown}`);
    await sleep(250);
  }
}

test('Dovecot 2.3 with the replication plugin feeds the replicator: IMAP saves, LMTP deliveries and flag changes reach the replica within seconds', { timeout: 60_000 }, async (t) => {
  const lmtpPort = LMTP ? await freePort() : 0;
  dovecot = await startDovecot({
    users: ['n1', 'n2'],
    extraConfig: `mail_location = maildir:${site.dir}/home/%u/Maildir
mail_plugins = $mail_plugins notify replication
${LMTP ? `protocols = imap lmtp\nservice lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${lmtpPort}\n  }\n}\n` : ''}service aggregator {
  unix_listener replication-notify {
    path = aggregator-notify
  }
  fifo_listener replication-notify-fifo {
    path = aggregator-notify-fifo
  }
}
plugin {
  mail_replica = mailferry
}
`,
  });
  const d = dovecot;
  await giveUsersTimeouts(d);
  const socketPath = `${d.root}/run/replication-notify`;

  const r = (replicator = startReplicator(site, {
    replication_max_watched_users: '0',
    replication_check_interval: '1h',
    replication_notify_socket: socketPath,
    ...(ROOT ? { replication_notify_user: 'nobody' } : {}),
  }));
  await r.waitFor(/started: 2 users .*, 0 watched, .*Dovecot notify socket .*replication-notify and fifo .*replication-notify-fifo/, 20_000);
  // The first check at start syncs both users; after it only Dovecot's notices move mail.
  await until(() => ['n1', 'n2'].every((u) => r.syncs(u).length > 0), 20_000, () => r.log());
  const [n1, n2] = site.users as [typeof site.users[0], typeof site.users[0]];
  const figures: string[] = [];

  // n1: APPEND is a sync request; it returns once the replica has the message.
  const m1 = message('imap-sync');
  const from1 = r.lines.length;
  let t0 = Date.now();
  await imap(d, 'n1', d.users.n1!, async (c) => {
    await c.append('INBOX', m1.text);
  });
  const appendMs = Date.now() - t0;
  assert.equal(inReplica(n1.replica, m1.id), 'INBOX ', `in the replica when APPEND returned; log:\n${r.log()}`);
  await r.waitFor(/user n1: incremental sync \(sync\) ok/, 5000, from1);
  figures.push(`IMAP APPEND with replication_sync_timeout returned after ${appendMs} ms, replicated`);

  // n2: APPEND goes through the fifo as high.
  const m2 = message('imap-fifo');
  const from2 = r.lines.length;
  t0 = Date.now();
  await imap(d, 'n2', d.users.n2!, async (c) => {
    await c.append('Work Stuff', m2.text);
  });
  const ms2 = await until(() => inReplica(n2.replica, m2.id) !== undefined, 10_000, () => r.log(), 20);
  assert.equal(inReplica(n2.replica, m2.id), '.Work Stuff ');
  // The log line follows the sync's last write; a sync the check at start began may come first.
  await r.waitFor(/user n2: incremental sync \(high\) ok/, 5000, from2);
  figures.push(`IMAP APPEND through the fifo: in the replica ${Date.now() - t0} ms after it was sent (${ms2} ms after APPEND returned)`);

  // A flag change over IMAP: low, through the fifo.
  const from3 = r.lines.length;
  t0 = Date.now();
  await imap(d, 'n2', d.users.n2!, async (c) => {
    await c.mailboxOpen('Work Stuff');
    const ok = await c.messageFlagsAdd({ header: { 'message-id': m2.id } }, ['\\Flagged', '\\Seen']);
    assert.ok(ok);
  });
  await until(() => inReplica(n2.replica, m2.id) === '.Work Stuff FS', 10_000, () => `${inReplica(n2.replica, m2.id)}\n${r.log()}`, 20);
  await r.waitFor(/user n2: incremental sync \(low\) ok/, 5000, from3);
  figures.push(`IMAP flag change: in the replica ${Date.now() - t0} ms after the command was sent`);

  // Hostile lines on both: logged, and the replicator keeps serving.
  assert.equal(await rawSocket(socketPath, `${'z'.repeat(10_000)}\n`), '');
  assert.equal(await rawSocket(socketPath, 'n1\tnow\n'), '');
  assert.equal(await rawSocket(socketPath, 'nobody-here\tsync\n'), '-\n');
  writeFifo(`${socketPath}-fifo`, `garbage\n${'q'.repeat(9000)}\n\x01\x02\x03\n`);
  await r.waitFor(/replication notify socket: a line longer than 8192 bytes; connection closed/, 5000);
  await r.waitFor(/replication notify socket: unknown priority "now"/, 5000);
  await r.waitFor(/user nobody-here is not one this replicator serves/, 5000);
  await r.waitFor(/replication notify fifo: .*skipped/, 5000);

  if (LMTP) {
    const m4 = message('lmtp');
    const from4 = r.lines.length;
    t0 = Date.now();
    await lmtpDeliver(lmtpPort, 'n2', m4.text);
    await until(() => inReplica(n2.replica, m4.id) !== undefined, 10_000, () => r.log(), 20);
    assert.equal(inReplica(n2.replica, m4.id), 'INBOX ');
    await r.waitFor(/user n2: incremental sync \(high\) ok/, 5000, from4);
    figures.push(`LMTP delivery: in the replica ${Date.now() - t0} ms after DATA was sent`);
    // n1's delivery waits for its replication too.
    const m5 = message('lmtp-sync');
    await lmtpDeliver(lmtpPort, 'n1', m5.text);
    assert.equal(inReplica(n1.replica, m5.id), 'INBOX ', 'replicated when LMTP answered');
  } else {
    t.diagnostic('dovecot-lmtpd is not installed: LMTP delivery left out');
  }

  for (const f of figures) t.diagnostic(`${f} (a busy machine)`);
  r.child.kill('SIGTERM');
  assert.equal(await r.exited, 0);
  replicator = undefined;
  assert.ok(!existsSync(socketPath), 'the socket goes with the replicator');

  // A restart: the fifo stayed, the socket comes back, and the next mail process's notices arrive.
  const again = (replicator = startReplicator(site, {
    replication_max_watched_users: '0',
    replication_check_interval: '1h',
    replication_notify_socket: socketPath,
    ...(ROOT ? { replication_notify_user: 'nobody' } : {}),
  }));
  await again.waitFor(/started: /, 20_000);
  const m6 = message('after-restart');
  const from6 = again.lines.length;
  await imap(d, 'n2', d.users.n2!, async (c) => {
    await c.append('INBOX', m6.text);
  });
  await until(() => inReplica(n2.replica, m6.id) !== undefined, 10_000, () => again.log(), 20);
  await again.waitFor(/user n2: incremental sync \(high\) ok/, 5000, from6);
  again.child.kill('SIGTERM');
  assert.equal(await again.exited, 0);
  replicator = undefined;
  await d.stop();
  dovecot = undefined;
});

test("Dovecot's aggregator forwards to the replicator named by its replicator_host", { timeout: 60_000 }, async () => {
  const socketPath = `${site.dir}/mailferry-notify`;
  dovecot = await startDovecot({
    users: ['n1', 'n2'],
    extraConfig: `mail_location = maildir:${site.dir}/home/%u/Maildir
mail_plugins = $mail_plugins notify replication
replicator_host = ${socketPath}
service aggregator {
  chroot =
}
plugin {
  mail_replica = mailferry
}
`,
  });
  const d = dovecot;
  await giveUsersTimeouts(d);
  const r = (replicator = startReplicator(site, {
    replication_max_watched_users: '0',
    replication_check_interval: '1h',
    replication_notify_socket: socketPath,
    ...(ROOT ? { replication_notify_user: 'nobody' } : {}),
  }));
  await r.waitFor(/started: 2 users .*Dovecot notify socket/, 20_000);
  const [n1, n2] = site.users as [typeof site.users[0], typeof site.users[0]];
  // The first test left both pairs in sync; the check at start finds nothing new.
  const m1 = message('aggregator-sync');
  const from1 = r.lines.length;
  await imap(d, 'n1', d.users.n1!, async (c) => {
    await c.append('Entwürfe', m1.text);
  });
  assert.equal(inReplica(n1.replica, m1.id), '.Entw&APw-rfe ', `in the replica when APPEND returned; log:\n${r.log()}`);
  await r.waitFor(/replication notify socket: Dovecot's aggregator connected \(replicator-notify 1\.0\)/, 5000);
  await r.waitFor(/user n1: incremental sync \(sync\) ok/, 5000, from1);
  const m2 = message('aggregator-high');
  const from2 = r.lines.length;
  await imap(d, 'n2', d.users.n2!, async (c) => {
    await c.append('INBOX', m2.text, ['\\Answered']);
  });
  await until(() => inReplica(n2.replica, m2.id) === 'INBOX R', 10_000, () => `${inReplica(n2.replica, m2.id)}\n${r.log()}`, 20);
  await r.waitFor(/user n2: incremental sync \(high\) ok/, 5000, from2);
  r.child.kill('SIGTERM');
  assert.equal(await r.exited, 0);
  replicator = undefined;

  // Mail that comes while the replicator is down is found by the check at its start; the
  // aggregator connects again at its next notice (or within 5 s), and sync requests work again.
  const m3 = message('while-down');
  await imap(d, 'n2', d.users.n2!, async (c) => {
    await c.append('INBOX', m3.text);
  });
  const back = (replicator = startReplicator(site, {
    replication_max_watched_users: '0',
    replication_check_interval: '1h',
    replication_notify_socket: socketPath,
    ...(ROOT ? { replication_notify_user: 'nobody' } : {}),
  }));
  await back.waitFor(/started: /, 20_000);
  await until(() => inReplica(n2.replica, m3.id) !== undefined, 15_000, () => back.log(), 20);
  const m4 = message('after-restart');
  const from4 = back.lines.length;
  await imap(d, 'n1', d.users.n1!, async (c) => {
    await c.append('INBOX', m4.text);
  });
  assert.equal(inReplica(n1.replica, m4.id), 'INBOX ', `in the replica when APPEND returned; log:\n${back.log()}`);
  await back.waitFor(/user n1: incremental sync \(sync\) ok/, 5000, from4);
  back.child.kill('SIGTERM');
  assert.equal(await back.exited, 0);
  replicator = undefined;
});
