/**
 * Failures a user meets first, through the CLI: one line on stderr and the documented exit
 * status (77 permission, 75 temporary, 78 configuration, 64 usage).
 */
import assert from 'node:assert/strict';
import { chown, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDovecot, type Dovecot } from '../support/dovecot.js';
import { cli, cliWithEnv, passwordFile } from './imap-helpers.js';

// The ACL plugin, so a mailbox can be listed but not read (what NOPERM means on any server).
// Dovecot checks an OAuth2 bearer token against the passdb like a password, which is enough
// to see the token command's output reach the server by XOAUTH2/OAUTHBEARER.
const ACL = 'auth_mechanisms = plain login xoauth2 oauthbearer\nmail_plugins = acl\nprotocol imap {\n  mail_plugins = acl imap_acl\n}\nplugin {\n  acl = vfile\n}\n';

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

describe('IMAP authentication and errors (CLI)', { timeout: 60_000 }, () => {
  let d: Dovecot;
  let dir: string;
  let pw: string;
  const loc = (extra = 'tls=none', scheme = 'imap') => `${scheme}://alice@127.0.0.1:${d.port}/?${extra}${extra ? '&' : ''}state=${join(dir, 'state')}`;
  before(async () => {
    d = await startDovecot({ users: ['alice'], imap: true, extraConfig: ACL });
    dir = await mkdtemp(join(tmpdir(), 'mailferry-imap-errors-'));
    pw = passwordFile(dir, 'alice', d.users.alice!);
  });
  after(async () => {
    await d?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const oneLine = (stderr: string) => {
    const lines = stderr.trim().split('\n');
    assert.equal(lines.length, 1, stderr);
    return lines[0]!;
  };

  it('wrong password: 77, "authentication failed"', () => {
    const bad = passwordFile(dir, 'wrong', 'not-the-password');
    const r = cli(bad, 'mailbox', 'list', loc());
    assert.equal(r.code, 77, r.stderr);
    assert.equal(oneLine(r.stderr), `mailferry: error: imap://alice@127.0.0.1:${d.port}: authentication failed`);
  });

  it('the password from MAILFERRY_PASSWORD; an OAuth2 token from oauth2_token_cmd', () => {
    let r = cliWithEnv({ MAILFERRY_PASSWORD: d.users.alice! }, undefined, 'mailbox', 'list', loc());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^INBOX$/m);
    for (const auth of ['xoauth2', 'oauthbearer']) {
      r = cli(undefined, '-o', `oauth2_token_cmd=echo ${d.users.alice}`, 'mailbox', 'list', loc(`tls=none&auth=${auth}`));
      assert.equal(r.code, 0, r.stderr);
    }
    r = cli(undefined, '-o', 'oauth2_token_cmd=echo expired', 'mailbox', 'list', loc('tls=none&auth=xoauth2'));
    assert.equal(r.code, 77, r.stderr);
    r = cli(undefined, '-o', 'oauth2_token_cmd=exit 3', 'mailbox', 'list', loc('tls=none&auth=xoauth2'));
    assert.equal(r.code, 78, r.stderr);
    assert.match(oneLine(r.stderr), /oauth2_token_cmd failed/);
  });

  it('no password anywhere and no terminal: 64 with what to do', () => {
    const r = cli(undefined, 'mailbox', 'list', loc());
    assert.equal(r.code, 64, r.stderr);
    assert.match(oneLine(r.stderr), /--password-file FILE or set MAILFERRY_PASSWORD/);
  });

  it('unreachable host (a closed port): 75', async () => {
    const port = await closedPort();
    const r = cli(pw, 'mailbox', 'list', `imap://alice@127.0.0.1:${port}/?tls=none&state=${join(dir, 'state2')}`);
    assert.equal(r.code, 75, r.stderr);
    assert.match(oneLine(r.stderr), /connection refused/);
  });

  it('TLS failures are configuration errors (78): imaps:// to a plaintext port, tls=required without STARTTLS', () => {
    let r = cli(pw, 'mailbox', 'list', loc('', 'imaps'));
    assert.equal(r.code, 78, r.stderr);
    assert.match(oneLine(r.stderr), /TLS/);
    r = cli(pw, 'mailbox', 'list', loc('tls=required'));
    assert.equal(r.code, 78, r.stderr);
    assert.match(oneLine(r.stderr), /STARTTLS/);
  });

  it('a mailbox the server may not read: 77 naming it', async () => {
    await d.doveadm(['mailbox', 'create', 'Locked'], { user: 'alice' });
    await d.doveadm(['save', '-m', 'Locked'], { user: 'alice', input: 'Subject: x\n\nhi\n' });
    const acl = join(d.home('alice'), 'Maildir', '.Locked', 'dovecot-acl');
    await writeFile(acl, 'owner l\n'); // lookup only: listed, not readable
    const owner = await stat(join(d.home('alice'), 'Maildir'));
    await chown(acl, owner.uid, owner.gid);
    const r = cli(pw, 'backup', loc(), `maildir:${join(dir, 'out')}`);
    assert.equal(r.code, 77, r.stderr);
    assert.match(oneLine(r.stderr), /mailbox 'Locked': permission denied/);
  });
});
