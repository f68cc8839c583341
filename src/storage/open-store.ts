/**
 * Opens the store a mail location names. The one place that knows every backend.
 */
import { parseLocation } from '../config/location.js';
import { DEFAULT_SETTINGS } from '../config/settings.js';
import { isRemoteLocation } from '../remote/remote-location.js';
import { isTcpLocation } from '../remote/tcp-location.js';
import { MaildirStore, type MaildirStoreOptions } from './maildir/maildir-store.js';
import type { MailStore } from './store.js';

export interface OpenStoreOptions extends MaildirStoreOptions {
  /** Create the location when it does not exist (a sync destination); reading never creates. */
  create?: boolean;
  /** Password for an IMAP location: the first line of this file (else MAILFERRY_PASSWORD, else a prompt on a TTY). */
  passwordFile?: string;
  /** Seconds an I/O operation on a remote store may stall before the run fails with exit 75 (-T). */
  ioTimeoutSeconds?: number;
  /** For `remote:` locations: the dsync_remote_cmd and dsync_compression settings; for `tcp:` and `tcps:`, server_port and server_secret_file. */
  remote?: { command?: string; compress?: boolean; port?: number; secretFile?: string };
  /** The user a run over users is for: %{user} in dsync_remote_cmd, the name remoteprefix: sends. */
  user?: string;
  /** -r FILE: a remote location's traffic, one frame a line. */
  rawlogFile?: string;
}

export async function openStore(location: string, options: OpenStoreOptions = {}): Promise<MailStore> {
  // What every far store (ssh or TCP) takes from a run, whichever transport carries it.
  const far = {
    compress: options.remote?.compress,
    user: options.user,
    create: options.create,
    force: options.force,
    lockTimeoutSeconds: options.lockTimeoutSeconds,
    ioTimeoutSeconds: options.ioTimeoutSeconds,
    rawlogFile: options.rawlogFile,
  };
  if (isTcpLocation(location)) {
    return (await import('../remote/open-tcp.js')).openTcpStore(location, {
      ...far,
      port: options.remote?.port ?? DEFAULT_SETTINGS.server_port,
      secretFile: options.remote?.secretFile,
    });
  }
  if (isRemoteLocation(location)) {
    return (await import('../remote/open-remote.js')).openRemoteStore(location, { ...far, command: options.remote?.command });
  }
  const loc = parseLocation(location);
  switch (loc.kind) {
    case 'maildir':
      return MaildirStore.open(loc, options);
    case 'mbox':
      return (await import('./mbox/mbox-store.js')).MboxStore.open(loc, options);
    case 'imap':
      return (await import('./imap/imap-store.js')).ImapStore.open(loc, options);
  }
}
