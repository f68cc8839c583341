/** Proves the Dovecot test harness: doveadm as oracle on our home and on arbitrary Maildirs, IMAP login. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { corpusFiles, corpusMessages } from '../support/corpus.js';
import {
  type Dovecot,
  doveadmFetch,
  doveadmMailboxList,
  doveadmMailboxStatus,
  grantDovecotAccess,
  parseDoveadmTable,
  startDovecot,
} from '../support/dovecot.js';

describe('dovecot harness', () => {
  let d: Dovecot;
  const msgs = corpusMessages(3);
  before(async () => {
    d = await startDovecot({ layout: 'fs' });
  });
  after(async () => {
    await d?.stop();
    if (d) assert.equal(existsSync(d.root), false, 'stop() removes the temp dir');
  });

  test('corpus', () => {
    assert.equal(corpusFiles().length, 6046);
    assert.equal(msgs.length, 3);
    assert.ok(msgs.every((m) => m.length > 0));
  });

  test('doveadm save, flags and fetch in INBOX and Work/Q3', async () => {
    assert.equal(d.separator, '/');
    await d.doveadm(['mailbox', 'create', 'Work/Q3'], { user: 'alice' });
    for (const box of ['INBOX', 'Work/Q3']) {
      for (const m of msgs) await d.doveadm(['save', '-m', box], { user: 'alice', input: m });
    }
    await d.doveadm(['flags', 'add', '\\Seen $Label1', 'mailbox', 'INBOX', 'uid', '2'], { user: 'alice' });
    await d.doveadm(['flags', 'add', '\\Flagged', 'mailbox', 'Work/Q3', 'uid', '1:2'], { user: 'alice' });

    const inbox = await doveadmFetch(d, 'alice', undefined, 'INBOX');
    assert.deepEqual(inbox.map((m) => m.uid), [1, 2, 3]);
    assert.deepEqual(inbox.map((m) => m.flags), [[], ['\\Seen', '$Label1'], []]);
    assert.deepEqual(inbox.map((m) => m.size), msgs.map((m) => m.length));
    const maildir = join(d.home('alice'), 'Maildir');
    const files = [...readdirSync(join(maildir, 'cur')), ...readdirSync(join(maildir, 'new'))];
    for (const m of inbox) {
      // A Maildir message's GUID is its file's base name: everything before ':2,'.
      assert.match(m.guid, /,S=\d+,W=\d+$/);
      assert.equal(files.filter((f) => f.split(':')[0] === m.guid).length, 1, m.guid);
    }
    const q3 = await doveadmFetch(d, 'alice', undefined, 'Work/Q3');
    assert.deepEqual(q3.map((m) => m.flags), [['\\Flagged'], ['\\Flagged'], []]);
    assert.ok(existsSync(join(maildir, 'Work', 'Q3', 'cur')), 'LAYOUT=fs puts Work/Q3 in Maildir/Work/Q3');

    const st = await doveadmMailboxStatus(d, 'alice', undefined, 'INBOX');
    assert.equal(st.messages, 3);
    assert.equal(st.uidnext, 4);
    assert.ok(st.uidvalidity > 0);
    assert.ok(st.highestmodseq >= 3);
    assert.match(st.guid, /^[0-9a-f]{32}$/);
    const st2 = await doveadmMailboxStatus(d, 'alice', undefined, 'Work/Q3');
    assert.notEqual(st2.guid, st.guid);
    assert.deepEqual(await doveadmMailboxList(d, 'alice'), ['INBOX', 'Work/Q3']);

    await assert.rejects(doveadmFetch(d, 'alice', undefined, 'Nope'), /doesn't exist/);
    await assert.rejects(d.doveadm(['mailbox', 'status', 'messages', 'Nope'], { user: 'alice' }), /exited with 68/);
  });

  test('parseDoveadmTable reads the pager and flow formats too', async () => {
    const pager = parseDoveadmTable(await d.doveadm(['fetch', 'uid flags hdr.subject', 'mailbox', 'INBOX'], { user: 'alice' }));
    assert.deepEqual(pager.map((r) => r.uid), ['1', '2', '3']);
    assert.equal(pager[1]!.flags, '\\Seen \\Recent $Label1'); // raw output keeps \Recent
    const body = parseDoveadmTable(await d.doveadm(['fetch', 'uid text', 'mailbox', 'INBOX', 'uid', '1'], { user: 'alice' }));
    assert.equal(body[0]!.text, msgs[0]!.toString('utf8').replace(/\n$/, ''));
    const flow = parseDoveadmTable(await d.doveadm(['mailbox', 'status', 'messages uidnext', 'INBOX'], { user: 'alice' }));
    assert.deepEqual(flow, [{ '': 'INBOX', messages: '3', uidnext: '4' }]);
  });

  test('doveadm reads an arbitrary Maildir path through mailLocation', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-harness-'));
    try {
      // As our own code would: a fresh Maildir++ root, owned by root, in a 0700 temp dir.
      for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(dir, 'Maildir', sub), { recursive: true });
      await grantDovecotAccess(dir);
      const loc = `maildir:${dir}/Maildir`;
      assert.deepEqual(await doveadmMailboxList(d, 'bob', loc), ['INBOX']);
      assert.deepEqual(await doveadmFetch(d, 'bob', loc, 'INBOX'), []);
      // Without LAYOUT=fs the separator is '.', even though the daemon's own layout is fs.
      await d.doveadm(['mailbox', 'create', 'Work.Q3'], { user: 'bob', mailLocation: loc });
      assert.ok(existsSync(join(dir, 'Maildir', '.Work.Q3', 'cur')));
      assert.deepEqual(await doveadmMailboxList(d, 'bob', loc), ['INBOX', 'Work.Q3']);
      assert.equal((await doveadmMailboxStatus(d, 'bob', loc, 'INBOX')).messages, 0);
      // bob's own home was not touched.
      assert.equal(existsSync(join(d.home('bob'), 'Maildir')), false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('IMAP greeting and LOGIN', async () => {
    const sock = connect(d.port, '127.0.0.1');
    let buf = '';
    const waitFor = (re: RegExp) =>
      new Promise<string>((resolve, reject) => {
        const check = () => {
          const m = re.exec(buf);
          if (m) {
            sock.off('data', onData);
            resolve(m[0]);
          }
        };
        const onData = (b: Buffer) => ((buf += b.toString('latin1')), check());
        sock.on('data', onData);
        sock.once('error', reject);
        check();
      });
    try {
      assert.match(await waitFor(/^\* OK .*\r\n/m), /^\* OK /);
      sock.write(`a1 LOGIN alice ${d.users.alice}\r\n`);
      assert.match(await waitFor(/^a1 (OK|NO|BAD).*\r\n/m), /^a1 OK /);
      sock.write('a2 LOGOUT\r\n');
      await waitFor(/^a2 OK.*\r\n/m);
    } finally {
      sock.destroy();
    }
  });
});
