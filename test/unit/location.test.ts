import assert from 'node:assert/strict';
import { test } from 'node:test';
import { locationIdentity, parseLocation } from '../../src/config/location.js';
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
