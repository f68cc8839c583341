import assert from 'node:assert/strict';
import { test } from 'node:test';
import { locationIdentity, locationOverlap, parseLocation, realPathOf } from '../../src/config/location.js';
import { parseImapLocation } from '../../src/config/imap-location.js';
import { MailferryError } from '../../src/model/errors.js';

const usage = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof MailferryError && e.exitCode === 64 && pattern.test(e.message));

test('maildir locations keep their parameters', () => {
  const loc = parseLocation('maildir:~/Maildir:LAYOUT=fs:INDEX=/var/idx', '/home/u');
  assert.deepEqual(loc, { kind: 'maildir', raw: 'maildir:~/Maildir:LAYOUT=fs:INDEX=/var/idx', root: '/home/u/Maildir', layout: 'fs', inbox: '/home/u/Maildir', indexDir: '/var/idx' });
});

test('mbox locations: INBOX is ROOT/inbox unless INBOX= names a spool; the index lies outside the root', () => {
  const saved = process.env.XDG_STATE_HOME;
  delete process.env.XDG_STATE_HOME;
  const loc = parseLocation('mbox:~/mail', '/home/u');
  if (saved !== undefined) process.env.XDG_STATE_HOME = saved;
  assert.deepEqual(loc, { kind: 'mbox', raw: 'mbox:~/mail', root: '/home/u/mail', inbox: '/home/u/mail/inbox', indexDir: '/home/u/.local/state/mailferry/mbox/%2Fhome%2Fu%2Fmail' });
  const spool = parseLocation('mbox:~/mail:INBOX=/var/mail/u', '/home/u');
  assert.equal(spool.kind === 'mbox' && spool.inbox, '/var/mail/u');
  usage(() => parseLocation('mbox:~/mail:BOGUS=1', '/home/u'), /unknown parameter 'BOGUS'/);
  usage(() => parseLocation('mbox:', '/home/u'), /path is empty/);
});

test('IMAP URLs: user with @, default ports, TLS modes, state directory', () => {
  const a = parseImapLocation('imaps://alice@example.com@mail.example.com', '/home/u');
  assert.equal(a.user, 'alice@example.com');
  assert.equal(a.host, 'mail.example.com');
  assert.equal(a.port, 993);
  assert.equal(a.tls, 'implicit');
  assert.match(a.stateDir, /^\/.*mailferry\/imap\/alice%40example\.com@mail\.example\.com:993$/);
  const b = parseLocation('imap://bob%40x.org@127.0.0.1:1143/?tls=none&state=~/st&cafile=/etc/ca.pem&auth=plain', '/home/u');
  assert.ok(b.kind === 'imap');
  assert.deepEqual([b.user, b.host, b.port, b.tls, b.stateDir, b.caFile, b.auth], ['bob@x.org', '127.0.0.1', 1143, 'none', '/home/u/st', '/etc/ca.pem', 'plain']);
  assert.equal(parseImapLocation('imap://u@[::1]:10143').host, '::1');
  assert.equal(parseImapLocation('imap://u@h').tls, 'starttls');
});

test('bad IMAP URLs are usage errors naming the problem', () => {
  usage(() => parseImapLocation('imap://host.only'), /no user name/);
  usage(() => parseImapLocation('imap://u:secret@h'), /password does not belong/);
  usage(() => parseImapLocation('imap://u@h:99999'), /bad port/);
  usage(() => parseImapLocation('imap://u@h/?tls=maybe'), /invalid tls=maybe/);
  usage(() => parseImapLocation('imaps://u@h/?tls=none'), /always TLS/);
  usage(() => parseImapLocation('imap://u@h/?colour=blue'), /unknown option 'colour'/);
  usage(() => parseLocation('pop3:foo'), /unsupported mail location type 'pop3'/);
});

test('the same place is recognised whatever the spelling', () => {
  const a = locationIdentity(parseLocation('imap://Alice@Mail.example.com'));
  const b = locationIdentity(parseLocation('imap://alice@mail.example.com:143/?tls=required'));
  assert.deepEqual(a, b);
});

test('overlapping locations: nested trees, one place through a symlink, an index or spool inside the other side', async () => {
  const { mkdtempSync, mkdirSync, symlinkSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-overlap-unit-'));
  try {
    mkdirSync(join(dir, 'S', 'cur'), { recursive: true });
    symlinkSync(join(dir, 'S'), join(dir, 'link'));
    const real = realPathOf(join(dir, 'S'));
    const overlap = (a: string, b: string) => locationOverlap(parseLocation(a, dir), parseLocation(b, dir));
    assert.deepEqual(overlap(`maildir:${dir}/S`, `maildir:${dir}/S/.Backup`), [real, join(real, '.Backup'), 'contains']);
    assert.deepEqual(overlap(`maildir:${dir}/S/.Backup`, `maildir:${dir}/S`), [join(real, '.Backup'), real, 'inside']);
    assert.deepEqual(overlap(`maildir:${dir}/S`, `maildir:${dir}/link`), [real, real, 'same']);
    // A path that does not exist yet is seen through the links above it.
    assert.equal(realPathOf(join(dir, 'link', 'new', 'deeper')), join(real, 'new', 'deeper'));
    assert.equal(overlap(`maildir:${dir}/S`, `maildir:${dir}/D:INDEX=${dir}/link/idx`)?.[2], 'contains');
    assert.equal(overlap(`maildir:${dir}/D:INBOX=${dir}/S/.x`, `maildir:${dir}/S`)?.[2], 'inside');
    assert.equal(overlap(`mbox:${dir}/M:INBOX=${dir}/S/spool`, `maildir:${dir}/S`)?.[2], 'inside');
    assert.equal(overlap(`mbox:${dir}/S/m`, `maildir:${dir}/S`)?.[2], 'inside');
    // Two locations sharing one index directory would share one index.
    assert.equal(overlap(`maildir:${dir}/A:INDEX=${dir}/idx`, `maildir:${dir}/B:INDEX=${dir}/idx`)?.[2], 'same');
    assert.equal(overlap(`maildir:${dir}/S`, `maildir:${dir}/S-copy`), undefined);
    assert.equal(overlap(`maildir:${dir}/S`, `mbox:${dir}/mail`), undefined);
    assert.equal(overlap('imap://alice@h', 'imap://Alice@H:143')?.[2], 'same');
    assert.equal(overlap('imap://alice@h', `maildir:${dir}/S`), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
