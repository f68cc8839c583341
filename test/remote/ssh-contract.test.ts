/**
 * The store contract through a real sshd: a RemoteStore whose far side is `mailferry
 * dsync-server` started by OpenSSH's server on loopback, serving a Maildir. The suite is the
 * one every local store passes; here each call crosses ssh, the far shell and a second process.
 *
 * The first store of a test is opened as a run opens a `remote:` location (openRemoteStore, which
 * takes the far run lock). The contract reopens the location while the first store is still
 * open, and a second connection asking for that run lock would wait for it: the reopened store
 * is connected over its own ssh command without the run lock, as the pipe contract does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { startCommand } from '../../src/remote/command-transport.js';
import { openRemoteStore } from '../../src/remote/open-remote.js';
import { remoteCommandArgs } from '../../src/remote/remote-command.js';
import { parseRemoteLocation } from '../../src/remote/remote-location.js';
import { RemoteStore } from '../../src/remote/remote-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { runStoreContract } from '../contract/store-contract.js';
import { startSshd, type Sshd } from '../support/sshd.js';

let sshd: Sshd;
let setting: string;
const farErrors: string[] = [];

before(async () => {
  sshd = await startSshd();
  setting = sshd.remoteCmdSetting(sshd.cli(['-o', 'mail_fsync=never', 'dsync-server']));
});
after(async () => {
  await sshd?.stop();
  if (farErrors.length > 0) process.stderr.write(`# far side said:\n${farErrors.join('\n')}\n`);
});

async function connectWithoutRunLock(location: string): Promise<MailStore> {
  const argv = remoteCommandArgs(setting, parseRemoteLocation(location), undefined);
  const transport = startCommand(argv, { label: sshd.host, stderr: (line) => farErrors.push(line) });
  return RemoteStore.connect(transport.stream, {
    label: `remote ${sshd.host}`,
    location,
    open: { create: true, force: false, lockSeconds: 10, runLock: false },
    compress: true,
    timeoutMs: 30_000,
    onClosed: () => transport.close(),
  });
}

// One layout: the layouts differ only on the far side, which the pipe contract runs for both.
runStoreContract({
  name: 'remote maildir through a real sshd',
  async open() {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-ssh-contract-'));
    const location = `remote:${sshd.login}@${sshd.host}:maildir:${join(dir, 'Maildir')}`;
    const store = await openRemoteStore(location, { command: setting, create: true, lockTimeoutSeconds: 10, ioTimeoutSeconds: 30, stderr: (line) => farErrors.push(line) });
    return {
      store,
      reopen: () => connectWithoutRunLock(location),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
});
