/** remote: locations and the dsync_remote_cmd expansion, pure. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MailferryError } from '../../src/model/errors.js';
import { DEFAULT_REMOTE_CMD, remoteCommandArgs, shellQuote } from '../../src/remote/remote-command.js';
import { isRemoteLocation, parseRemoteLocation } from '../../src/remote/remote-location.js';

describe('remote locations', () => {
  it('parses host, login@host, an explicit far location, IPv6 and remoteprefix:', () => {
    assert.deepEqual(parseRemoteLocation('remote:nas'), { kind: 'remote', raw: 'remote:nas', prefix: false, host: 'nas' });
    assert.deepEqual(parseRemoteLocation('remote:backup@nas.example.org'), { kind: 'remote', raw: 'remote:backup@nas.example.org', prefix: false, host: 'nas.example.org', login: 'backup' });
    assert.deepEqual(parseRemoteLocation('remote:backup@nas:maildir:/srv/backup/alice:LAYOUT=fs'), {
      kind: 'remote',
      raw: 'remote:backup@nas:maildir:/srv/backup/alice:LAYOUT=fs',
      prefix: false,
      host: 'nas',
      login: 'backup',
      location: 'maildir:/srv/backup/alice:LAYOUT=fs',
    });
    assert.equal(parseRemoteLocation('remote:alice@example.org@nas').login, 'alice@example.org');
    assert.equal(parseRemoteLocation('remote:[::1]:mbox:~/mail').host, '::1');
    assert.equal(parseRemoteLocation('remote:[::1]:mbox:~/mail').location, 'mbox:~/mail');
    assert.equal(parseRemoteLocation('REMOTEPREFIX:nas').prefix, true);
    assert.ok(isRemoteLocation('remote:x') && !isRemoteLocation('maildir:/remote:x'));
  });

  it('refuses what would become an option or no host at all (usage, 64)', () => {
    for (const bad of ['remote:', 'remote:-oProxyCommand=x', 'remote:@nas', 'remote:-l@nas', 'remote:nas:', 'remote:nas:/srv/mail', 'remote:nas x', 'remote:[::1', 'remote:a b@nas']) {
      assert.throws(() => parseRemoteLocation(bad), (e: unknown) => e instanceof MailferryError && e.exitCode === 64, bad);
    }
  });

  it('never yields a host or login that starts with - (fast-check)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        try {
          const r = parseRemoteLocation(`remote:${s}`);
          assert.ok(!r.host.startsWith('-') && !(r.login ?? '').startsWith('-') && r.host !== '');
        } catch (err) {
          assert.ok(err instanceof MailferryError && err.exitCode === 64);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('dsync_remote_cmd', () => {
  const at = (raw: string) => parseRemoteLocation(raw);

  it('drops an argument whose variables are all empty, as dsync does', () => {
    assert.deepEqual(remoteCommandArgs(DEFAULT_REMOTE_CMD, at('remote:nas'), undefined), ['ssh', 'nas', 'mailferry', 'dsync-server']);
    assert.deepEqual(remoteCommandArgs(DEFAULT_REMOTE_CMD, at('remote:backup@nas'), 'alice'), ['ssh', '-lbackup', 'nas', 'mailferry', 'dsync-server', '-ualice']);
  });

  it('an explicit far location is the last argument, quoted for the far shell when ssh runs it', () => {
    assert.deepEqual(remoteCommandArgs(DEFAULT_REMOTE_CMD, at("remote:nas:maildir:/srv/it's here/$HOME"), 'a b'), [
      'ssh',
      'nas',
      'mailferry',
      'dsync-server',
      "-u'a b'",
      `'maildir:/srv/it'\\''s here/$HOME'`,
    ]);
    assert.deepEqual(remoteCommandArgs('node /x/main.js dsync-server', at('remote:h:maildir:/a b'), undefined), ['node', '/x/main.js', 'dsync-server', 'maildir:/a b']);
  });

  it('an unknown variable is a configuration error (78)', () => {
    assert.throws(() => remoteCommandArgs('ssh %{port} %{host}', at('remote:nas'), undefined), (e: unknown) => e instanceof MailferryError && e.exitCode === 78 && /%\{port\}/.test(e.message));
  });

  it('single quotes survive a POSIX shell (fast-check round trip through sh)', async () => {
    const { execFileSync } = await import('node:child_process');
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }).filter((s) => !s.includes('\u0000')), (s) => {
        const out = execFileSync('sh', ['-c', `printf %s ${shellQuote(s)}`]).toString();
        assert.equal(out, s);
      }),
      { numRuns: 60 },
    );
  });
});
