/**
 * Backup, pull and two-way sync of SpamAssassin mail with a remote Maildir and a remote mbox
 * reached through a real sshd, with Dovecot's doveadm reading both ends: the far side is
 * `mailferry dsync-server` run by OpenSSH's server on loopback; doveadm must find the same
 * UIDs, UIDVALIDITY, UIDNEXT, flags, keywords, message and mailbox GUIDs on both. The changes
 * between runs are made as a server's own software makes them: Dovecot (doveadm) on either
 * side, and a delivery agent writing into new/ or a client deleting a file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/storage/open-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { req } from '../contract/store-contract.js';
import { corpusFiles } from '../support/corpus.js';
import {
  doveadmFetch,
  doveadmMailboxList,
  doveadmMailboxStatus,
  grantDovecotAccess,
  startDovecot,
  type Dovecot,
} from '../support/dovecot.js';
import { startSshd, type Sshd } from '../support/sshd.js';
import { snapshot } from './mail-snapshot.js';
import { mf, type Run } from './remote-cli-support.js';

/** Folders with spaces, unicode, '&' and dots in their names (LAYOUT=fs keeps dots as they are). */
const FOLDERS = [['INBOX'], ['Sent Items'], ['Entwürfe'], ['Lists', 'dev.null'], ['日本語', 'v1.2 notes'], ['A & B']];
const SYSTEM_FLAGS = [[], ['\\Seen'], ['\\Seen', '\\Answered'], ['\\Flagged'], ['\\Seen', '\\Draft'], ['\\Deleted', '\\Seen']] as const;
const KEYWORDS = [[], ['$Label1'], [], ['work', '$Junk'], [], ['$Forwarded']] as const;

/** Every doveadm-visible fact of a mailbox tree that two replicas must share. */
interface DoveadmView {
  [mailbox: string]: { messages: number; uidvalidity: number; uidnext: number; guid: string; mail: string[] };
}

describe('remote Maildir and mbox through a real sshd, with doveadm reading both ends', { timeout: 300_000 }, () => {
  let sshd: Sshd;
  let d: Dovecot;
  let scratch: string;
  let spare: Buffer[];
  let setting: string;
  let count = 0;

  /** The far Maildir, mbox and the local ones, by name; all under `scratch`. */
  const path = (name: string) => join(scratch, name);
  const maildir = (name: string) => `maildir:${path(name)}:LAYOUT=fs`;
  const mbox = (name: string) => `mbox:${path(name)}`;
  const remote = (location: string) => `remote:${sshd.login}@${sshd.host}:${location}`;
  const run = (args: string[]): Run => mf(args, setting);

  before(async () => {
    [sshd, d] = await Promise.all([startSshd(), startDovecot({ users: ['alice'], imap: false })]);
    setting = sshd.remoteCmdSetting(sshd.cli(['-o', 'mail_fsync=never', 'dsync-server']));
    scratch = await mkdtemp(join(tmpdir(), 'mailferry-ssh-corpus-'));
    // A slice across the whole corpus (every kind of ham and spam, 8-bit, CRLF, "From " lines).
    const files = corpusFiles();
    const picked = files.filter((_, i) => i % 17 === 0).map((f) => readFileSync(f));
    spare = files.filter((_, i) => i % 17 === 8).slice(0, 12).map((f) => readFileSync(f));
    const a = await openStore(maildir('a'), { create: true, fsync: false, warn: () => {} });
    try {
      for (const f of FOLDERS.slice(1)) await a.createMailbox(f);
      await a.setSubscribed(['Sent Items'], true);
      for (const [fi, folder] of FOLDERS.entries()) {
        const mine = picked.filter((_, i) => i % FOLDERS.length === fi);
        await a.saveMessages(folder, mine.map((body, i) => req(body, {
          flags: [...SYSTEM_FLAGS[i % SYSTEM_FLAGS.length]!],
          keywords: [...KEYWORDS[(i + fi) % KEYWORDS.length]!],
          receivedDate: Date.UTC(2002, 8, 1) + i * 3_600_000,
        })));
      }
    } finally {
      await a.close();
    }
    count = picked.length;
  });
  after(async () => {
    await Promise.all([sshd?.stop(), d?.stop()]);
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  let indexes = 0;
  /**
   * doveadm's location for one of ours. An mbox gets a fresh index directory of Dovecot's each
   * time: with one kept from an earlier call, Dovecot's default mbox_dirty_syncs makes a read that
   * is not an IMAP SELECT notice only new mail, not flags another program rewrote in place (as
   * its documentation warns); and without any (INDEX=MEMORY) it has no mailbox GUIDs to show.
   */
  function doveadmLocation(location: string): string {
    if (!location.startsWith('mbox:')) return location;
    const index = path(`dovecot-index-${indexes++}`);
    mkdirSync(index);
    return `${location}:INDEX=${index}`;
  }

  /**
   * What doveadm reads in a tree. `exact: false` for an mbox: Dovecot keeps its own message and
   * mailbox GUIDs there, and counts in a message's size the header mailferry keeps a message's
   * own leading "From " line under; mailferryView() compares those.
   */
  async function doveadmView(location: string, exact = true): Promise<DoveadmView> {
    const where = doveadmLocation(location);
    await grantDovecotAccess(scratch);
    const view: DoveadmView = {};
    for (const name of await doveadmMailboxList(d, 'alice', where)) {
      const st = await doveadmMailboxStatus(d, 'alice', where, name);
      const mail = await doveadmFetch(d, 'alice', where, name);
      view[name] = {
        messages: st.messages,
        uidvalidity: st.uidvalidity,
        uidnext: st.uidnext,
        guid: exact ? st.guid : '',
        mail: mail.map((m) => `${m.uid} ${exact ? `${m.guid} ${m.size}` : '-'} ${[...m.flags].sort().join(' ')}`),
      };
    }
    return view;
  }

  async function doveadm(location: string, args: string[], input?: Buffer): Promise<string> {
    const where = doveadmLocation(location);
    await grantDovecotAccess(scratch);
    return d.doveadm(args, { user: 'alice', mailLocation: where, input });
  }

  /** mailferry's own reading, for what doveadm cannot share (an mbox's GUIDs): through the far process when remote. */
  async function mailferryView(location: string) {
    const s: MailStore = await openStore(location, { create: false, fsync: false, warn: () => {}, remote: { command: setting } });
    try {
      const { mailboxes } = await s.listMailboxes();
      return {
        mailboxGuids: Object.fromEntries(mailboxes.map((m) => [m.name.join('/'), m.guid])),
        mail: await snapshot(s),
      };
    } finally {
      await s.close();
    }
  }

  const total = (v: DoveadmView) => Object.values(v).reduce((n, m) => n + m.messages, 0);

  it('backup to a remote Maildir: doveadm reads the far copy as the source, -v shows the progress, and a second --json run copies nothing', async () => {
    let r = run(['backup', '-v', maildir('a'), remote(maildir('b'))]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^mailbox INBOX: copy \d+/m);
    assert.match(r.stderr, /^mailferry: done: 6 mailboxes \(0 unchanged\), (\d+)\/\1 messages/m);
    const source = await doveadmView(maildir('a'));
    assert.equal(total(source), count);
    assert.deepEqual(Object.keys(source).sort(), ['A & B', 'Entwürfe', 'INBOX', 'Lists/dev.null', 'Sent Items', '日本語/v1.2 notes']);
    assert.ok(source.INBOX!.mail.some((m) => m.includes('$Label1')) && source['Sent Items']!.mail.some((m) => / \$Junk .*work/.test(m)), 'keywords are there to compare');
    assert.deepEqual(await doveadmView(maildir('b')), source);
    assert.match(await doveadm(maildir('b'), ['mailbox', 'list', '-s']), /^Sent Items$/m);

    r = run(['backup', '--json', maildir('a'), remote(maildir('b'))]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { mailboxes: number; saved: number; flagUpdates: number; expunged: number; treeActions: number };
    assert.deepEqual([json.mailboxes, json.saved, json.flagUpdates, json.expunged, json.treeActions], [6, 0, 0, 0, 0]);
  });

  it('backup to a remote mbox: doveadm reads the source\'s UIDs, flags and keywords there, and the far mailferry its GUIDs and bodies', async () => {
    const r = run(['backup', maildir('a'), remote(mbox('m'))]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await doveadmView(mbox('m'), false), await doveadmView(maildir('a'), false));
    assert.deepEqual(await mailferryView(remote(mbox('m'))), await mailferryView(maildir('a')));
  });

  it('backup -R pulls the remote Maildir and the remote mbox back, and doveadm reads each copy as the source', async () => {
    let r = run(['backup', '-R', maildir('c'), remote(maildir('b'))]);
    assert.equal(r.code, 0, r.stderr);
    const source = await doveadmView(maildir('a'));
    assert.deepEqual(await doveadmView(maildir('c')), source);
    // Through an mbox and back, GUIDs included: the far mbox's index kept the ones it was given.
    r = run(['backup', '-R', maildir('e'), remote(mbox('m'))]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await doveadmView(maildir('e')), source);
  });

  it('--dry-run writes nothing on the far side: not a new location, not a change to an existing one', () => {
    deliver(path('a'), spare[0]!, 'dry');
    const before = treeState(path('b'));
    let r = run(['backup', '--dry-run', maildir('a'), remote(maildir('b'))]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^mailbox INBOX: copy 1, /m);
    assert.deepEqual(treeState(path('b')), before);

    run(['backup', '--dry-run', maildir('a'), remote(maildir('never'))]);
    assert.deepEqual(readdirSync(scratch).filter((n) => n.startsWith('never')), []);
  });

  // A local destination that does not exist yet is planned as empty by a dry run; a far one is
  // known to be missing only once the far side answers so, and is then planned as empty too.
  it('--dry-run to a far location that does not exist yet shows the plan of a first backup, as a local one does', () => {
    const r = run(['backup', '--dry-run', maildir('a'), remote(maildir('not yet'))]);
    const local = run(['backup', '--dry-run', maildir('a'), maildir('not yet here')]);
    assert.deepEqual(readdirSync(scratch).filter((n) => n.startsWith('not yet')), []);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^create mailbox Sent Items$/m);
    assert.equal(r.stdout, local.stdout, 'the plan of a local dry run to a missing destination');
  });

  it('two-way sync after deliveries, flag and keyword changes, expunges and a folder rename on both sides', async () => {
    const a = maildir('a');
    const b = maildir('b');
    const initial = await doveadmView(a);
    // Here: a delivery agent and a client writing files, and Dovecot changing flags and keywords.
    const deliveredHere = [deliver(path('a'), spare[1]!, 'here'), deliver(join(path('a'), 'Sent Items'), spare[2]!, 'here')];
    await doveadm(a, ['flags', 'add', '\\Flagged $Label2', 'mailbox', 'INBOX', 'uid', '1']);
    await doveadm(a, ['flags', 'remove', '\\Seen', 'mailbox', 'INBOX', 'uid', '2']);
    await doveadm(a, ['expunge', 'mailbox', 'Entwürfe', 'uid', '3']);
    const goneHere = unlinkOne(join(path('a'), 'Lists', 'dev.null'));
    // There: Dovecot delivering, changing flags, expunging and renaming a folder.
    for (const body of spare.slice(3, 5)) await doveadm(b, ['save', '-m', 'INBOX'], body);
    await doveadm(b, ['flags', 'add', 'urgent \\Answered', 'mailbox', 'Sent Items', 'uid', '1:2']);
    await doveadm(b, ['flags', 'remove', '$Label1', 'mailbox', 'INBOX', 'keyword', '$Label1']);
    await doveadm(b, ['expunge', 'mailbox', 'A & B', 'uid', '1:3']);
    await doveadm(b, ['mailbox', 'rename', 'Lists/dev.null', 'Archiv/Listen.2002']);
    const beforeA = await doveadmView(a);
    const beforeB = await doveadmView(b);

    let r = run(['sync', a, remote(b)]);
    assert.equal(r.code, 0, r.stderr);
    r = run(['sync', '--json', a, remote(b)]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { saved: number; expunged: number; flagUpdates: number };
    assert.equal(json.saved + json.expunged + json.flagUpdates, 0, r.stdout);

    const here = await doveadmView(a);
    assert.deepEqual(await doveadmView(b), here, 'both ends read the same in doveadm');
    assert.deepEqual(Object.keys(here).sort(), ['A & B', 'Archiv/Listen.2002', 'Entwürfe', 'INBOX', 'Sent Items', '日本語/v1.2 notes']);
    assert.equal(here['Archiv/Listen.2002']!.guid, beforeA['Lists/dev.null']!.guid, 'the renamed folder kept its GUID');
    assert.equal(here['Archiv/Listen.2002']!.messages, beforeB['Archiv/Listen.2002']!.messages - 1, 'the file deleted here is gone there too');
    assert.ok(initial['Lists/dev.null']!.mail.some((m) => m.includes(` ${goneHere} `)), 'doveadm knew the deleted file by its name');
    assert.ok(!here['Archiv/Listen.2002']!.mail.some((m) => m.includes(` ${goneHere} `)));
    assert.equal(here['A & B']!.messages, beforeA['A & B']!.messages - 3);
    assert.equal(here['Entwürfe']!.messages, beforeB['Entwürfe']!.messages - 1);
    assert.equal(here.INBOX!.messages, beforeA.INBOX!.messages + 2, 'the two saved there arrived here');
    assert.equal(here.INBOX!.messages, beforeB.INBOX!.messages + 2, 'the one delivered here and the one the dry run left arrived there');
    assert.ok(here.INBOX!.mail.some((m) => m.includes(` ${deliveredHere[0]} `)));
    assert.ok(here['Sent Items']!.mail.some((m) => m.includes(` ${deliveredHere[1]} `)));
    const inbox = (uid: number) => here.INBOX!.mail.find((m) => m.startsWith(`${uid} `))!;
    assert.match(inbox(1), /\\Flagged/);
    assert.match(inbox(1), /\$Label2/);
    assert.doesNotMatch(inbox(2), /\\Seen/);
    assert.ok(!here.INBOX!.mail.some((m) => m.includes('$Label1')), 'the keyword removed there is gone here');
    for (const uid of [1, 2]) assert.match(here['Sent Items']!.mail.find((m) => m.startsWith(`${uid} `))!, /\\Answered.* urgent|urgent.*\\Answered/);
    const bodies = await mailferryView(a);
    for (const body of [spare[1]!, spare[2]!, spare[3]!, spare[4]!]) {
      const md5 = createHash('md5').update(body).digest('hex');
      const held = Object.values(bodies.mail).flat().filter((m) => m.md5 === md5);
      assert.equal(held.length, 1, 'each delivered message is held once');
    }
  });

  it('two-way sync with the remote mbox, changed by Dovecot there and by the sync above here', async () => {
    const a = maildir('a');
    const m = mbox('m');
    await doveadm(m, ['flags', 'add', '\\Flagged project', 'mailbox', 'INBOX', 'uid', '1:3']);
    await doveadm(m, ['expunge', 'mailbox', 'Sent Items', 'uid', '4']);
    await doveadm(m, ['save', '-m', 'Entwürfe'], spare[5]!);
    const beforeA = await doveadmView(a);
    const beforeM = await doveadmView(m, false);

    let r = run(['sync', a, remote(m)]);
    assert.equal(r.code, 0, r.stderr);
    r = run(['sync', '--json', a, remote(m)]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { saved: number; expunged: number; flagUpdates: number };
    assert.equal(json.saved + json.expunged + json.flagUpdates, 0, r.stdout);

    assert.deepEqual(await mailferryView(remote(m)), await mailferryView(a));
    const here = await doveadmView(a, false);
    assert.deepEqual(await doveadmView(m, false), here);
    assert.deepEqual(Object.keys(here), Object.keys(beforeA), 'the rename reached the mbox');
    assert.equal(here['Sent Items']!.messages, beforeA['Sent Items']!.messages - 1, 'the expunge there happened here');
    assert.equal(here['Entwürfe']!.messages, beforeA['Entwürfe']!.messages + 1);
    assert.equal(here.INBOX!.messages, beforeM.INBOX!.messages + 4, 'the four new here reached the mbox');
    for (const uid of [1, 2, 3]) assert.match(here.INBOX!.mail.find((x) => x.startsWith(`${uid} `))!, / project/);
  });
});

let serial = 0;

/** A delivery agent's write: a unique name in new/; returns the name. */
function deliver(dir: string, body: Buffer, tag: string): string {
  const name = `${1_750_000_000 + serial}.M${serial++}P${process.pid}.${tag}`;
  writeFileSync(join(dir, 'new', name), body);
  return name;
}

/** A client deleting one message file of a folder; returns the file's base name (its GUID). */
function unlinkOne(dir: string): string {
  const name = readdirSync(join(dir, 'cur')).sort()[0]!;
  unlinkSync(join(dir, 'cur', name));
  return name.split(':')[0]!;
}

/** Every file and directory of a tree with its size and mtime: anything written shows. */
function treeState(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const st = statSync(p);
      out.push(`${p} ${st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}
