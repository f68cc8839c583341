/**
 * `mailferry server` as a real process on loopback with real TLS (openssl's certificates), and
 * SpamAssassin mail moving over tcps: for several users at once: backup, backup -R and two-way
 * sync with changes made on both sides (on the server by Dovecot itself), and a run over users
 * whose user reaches the server without being written in the location. doveadm reads both
 * ends and must find the same mailboxes, UIDs, UIDVALIDITY, UIDNEXT, GUIDs, sizes and flags.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { corpusMessages } from '../support/corpus.js';
import { startDovecot, type Dovecot } from '../support/dovecot.js';
import { req } from '../contract/store-contract.js';
import { mf, startServer, type ServerProcess } from './server-harness.js';
import { doveadmView, fill, mailferryView, makeServerSite, NOBODY, openAt, ROOT, shareWithDovecot, type ServerSite } from './server-site.js';

describe('mailferry server: backup, -R and sync over tcps: for several users, doveadm reading both ends', { timeout: 300_000 }, () => {
  let site: ServerSite;
  let d: Dovecot;
  let server: ServerProcess;
  let bodies: Buffer[];
  const run = (args: string[]) => mf(args, { settings: site.clientSettings });

  before(async () => {
    site = makeServerSite(['alice', 'bob', 'carol', 'dave']);
    [d, server] = await Promise.all([startDovecot({ users: ['alice'], imap: false }), startServer(site.serverArgs, { settings: site.serverSettings })]);
    bodies = corpusMessages(400);
  });
  after(async () => {
    const end = await server?.stop();
    await d?.stop();
    site?.cleanup();
    assert.equal(end?.code, 0, 'the server drains and exits 0 on SIGTERM');
  });

  async function assertSameBothEnds(localName: string, user: string): Promise<void> {
    await shareWithDovecot(site, localName);
    const theirs = await doveadmView(d, site.serverMail(user));
    const boxes = Object.values(theirs) as { guid: string; mail: string[] }[];
    assert.ok(boxes.length >= 5 && boxes.every((b) => /^[0-9a-f]{32}$/.test(b.guid)), 'every mailbox, each with its GUID');
    assert.ok(boxes.some((b) => b.mail.some((m) => / \$Label1|\\Seen/.test(m))), 'flags and keywords');
    assert.deepEqual(await doveadmView(d, site.local(localName)), theirs, `doveadm reads ${localName} and ${user}'s server mail alike`);
    assert.deepEqual(await mailferryView(site, site.local(localName)), await mailferryView(site, site.tcps(server.port, user)));
  }

  it('backs up two users at once; each lands in its own account; a second run copies nothing', async () => {
    await fill(site, site.local('alice'), bodies.slice(0, 90));
    await fill(site, site.local('bob'), bodies.slice(90, 160));
    const [a, b] = await Promise.all([run(['backup', site.local('alice'), site.tcps(server.port, 'alice')]), run(['backup', site.local('bob'), site.tcps(server.port, 'bob')])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    await assertSameBothEnds('alice', 'alice');
    await assertSameBothEnds('bob', 'bob');
    // Each connection's line comes once the server has closed it, a moment after the client is done.
    await server.waitForLine(/ tls=TLSv1\.[23] auth=secret user=alice wait=[0-9.]+s result=ok exit=0 .* saved=90 /);
    await server.waitForLine(/ user=bob wait=[0-9.]+s result=ok exit=0 .* saved=70 /);
    const again = await run(['backup', '--json', site.local('alice'), site.tcps(server.port, 'alice')]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { saved: number }).saved, 0);
  });

  it('backup -R restores a user from the server into an empty local Maildir', async () => {
    const r = await run(['backup', '-R', site.local('bob-restored'), site.tcps(server.port, 'bob')]);
    assert.equal(r.code, 0, r.stderr);
    await assertSameBothEnds('bob-restored', 'bob');
  });

  it('two-way sync: changes on both sides meet, Dovecot writing on the server; a third run finds nothing', async () => {
    const local = site.local('carol');
    const far = site.tcps(server.port, 'carol');
    await fill(site, local, bodies.slice(160, 240));
    let r = await run(['sync', local, far]);
    assert.equal(r.code, 0, r.stderr);
    await assertSameBothEnds('carol', 'carol');

    // On the server, as its own software would: Dovecot flags, expunges and delivers.
    const serverAt = `${site.serverMail('carol')}`;
    await d.doveadm(['flags', 'add', '\\Flagged $Label2', 'mailbox', 'INBOX', 'uid', '1:3'], { user: 'alice', mailLocation: serverAt });
    await d.doveadm(['expunge', 'mailbox', 'Sent Items', 'uid', '2'], { user: 'alice', mailLocation: serverAt });
    await d.doveadm(['save', '-m', 'Entwürfe'], { user: 'alice', mailLocation: serverAt, input: bodies[300]! });
    // Locally, through mailferry.
    const s = await openAt(site, local);
    try {
      const inbox = (await s.getMessages(['INBOX'])).messages;
      await s.updateFlags(['INBOX'], [{ uid: inbox[5]!.uid, flags: ['\\Seen', '\\Answered'], keywords: ['done'] }]);
      await s.expunge(['INBOX'], [inbox[6]!.uid]);
      await s.saveMessages(['日本語'], [req(bodies[301]!)]);
      await s.createMailbox(['Archive', '2024']);
      await s.saveMessages(['Archive', '2024'], [req(bodies[302]!), req(bodies[303]!)]);
    } finally {
      await s.close();
    }
    r = await run(['sync', local, far]);
    assert.equal(r.code, 0, r.stderr);
    await assertSameBothEnds('carol', 'carol');
    const view = await mailferryView(site, far);
    assert.equal(Object.values(view).flat().length, 80 - 1 - 1 + 1 + 1 + 2, 'every message once: 80, two expunged, four added');
    r = await run(['sync', '--json', local, far]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { saved: number; expunged: number; flagUpdates: number };
    assert.equal(j.saved + j.expunged + j.flagUpdates, 0, 'nothing left to do');
  });

  it("a run over users (-u) serves the run's user without naming it in the location, reading the root-only secret as root", async () => {
    const local = site.local('dave');
    await fill(site, local, bodies.slice(320, 350));
    await shareWithDovecot(site, 'dave');
    const clientUsers = join(site.dir, 'client-users');
    const [uid, gid] = ROOT ? [NOBODY, NOBODY] : [process.getuid!(), process.getgid!()];
    writeFileSync(clientUsers, `dave:x:${uid}:${gid}::${site.dir}::userdb_mail=${local}\n`);
    const r = await run(['-o', `userdb=passwd-file:${clientUsers}`, '-o', 'first_valid_uid=0', 'backup', '-u', 'dave', `tcps:127.0.0.1:${server.port}?cafile=${site.certs.ca}`]);
    assert.equal(r.code, 0, r.stderr);
    await assertSameBothEnds('dave', 'dave');
    await server.waitForLine(/ user=dave wait=[0-9.]+s result=ok .* saved=30 /);
  });
});
