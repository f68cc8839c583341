/**
 * What `mailferry dsync-server` does once its options are read: serve one store on stdin/stdout
 * (see commands/dsync-server.ts), loaded only when that command runs.
 */
import { userInfo } from 'node:os';
import { Duplex } from 'node:stream';
import { parseLocation } from '../../config/location.js';
import type { Settings } from '../../config/settings.js';
import { expandPathTemplate, userVars } from '../../config/template.js';
import { openUserDb } from '../../config/userdb/open-userdb.js';
import { PasswdUserDb } from '../../config/userdb/passwd-userdb.js';
import { MailferryError, usageError } from '../../model/errors.js';
import { isRemoteLocation } from '../../remote/remote-location.js';
import { openForPeer } from '../../remote/open-for-peer.js';
import { openRawlogFile } from '../../remote/rawlog-file.js';
import { serveStore, type OpenedForPeer } from '../../remote/store-server.js';
import type { OpenRequest } from '../../remote/wire-ops.js';
import { runningAsRoot } from '../../users/identity.js';
import { resolveUserRun } from '../../users/user-run-spec.js';

interface ServedAccount {
  location: string;
  user?: string;
  uid?: number;
  gid?: number;
  home?: string;
}

/** LOCATION as given; else the user's mail (-u) or mail_location, expanded. */
async function servedAccount(locationArg: string | undefined, user: string | undefined, settings: Settings): Promise<ServedAccount> {
  if (user !== undefined) {
    if (user === '') throw usageError('-u needs a user name');
    // Dovecot's default userdb is the system's accounts.
    const userdb = (await openUserDb(settings, 'userdb')) ?? new PasswdUserDb(settings.first_valid_uid, settings.last_valid_uid);
    try {
      const record = await userdb.lookup(user);
      if (!record) throw new MailferryError('nouser', `unknown user ${user} (${userdb.description})`);
      // An explicit LOCATION is the client's, already expanded; only templates are expanded here.
      const spec = resolveUserRun(record, settings, { sourceArg: locationArg?.replace(/%/g, '%%'), destinationArg: '', replica: false });
      return { location: spec.source, user, uid: spec.uid, gid: spec.gid, home: spec.home };
    } finally {
      await userdb.close();
    }
  }
  if (locationArg !== undefined) return { location: locationArg };
  if (!settings.mail_location) throw usageError('dsync-server needs LOCATION, -u USER, or -o mail_location=LOCATION');
  const me = userInfo();
  return { location: expandPathTemplate(settings.mail_location, userVars(me.username, process.env.HOME ?? me.homedir), 'mail_location') };
}

/** Takes the user's ids for the rest of the process. */
function becomeForGood(account: ServedAccount): void {
  if (account.user === undefined) return;
  if (runningAsRoot()) {
    if (account.uid === undefined) {
      throw new MailferryError('permission', `user ${account.user}: no uid known; as root a user's mail is served with that user's uid (set uid in the userdb, or mail_uid)`);
    }
    const gid = account.gid ?? account.uid;
    process.setgroups!([gid]);
    process.setgid!(gid);
    process.setuid!(account.uid);
    if (account.home !== undefined) {
      process.env.HOME = account.home;
      process.env.XDG_STATE_HOME = `${account.home}/.local/state`;
    }
  } else if (account.uid !== undefined && account.uid !== process.geteuid?.()) {
    throw new MailferryError('permission', `user ${account.user}: the mail belongs to uid ${account.uid} and mailferry runs as uid ${process.geteuid?.()}: run as root or as that user`);
  }
}

export async function runDsyncServer(locationArg: string | undefined, opts: { user?: string; rawlog?: string }, settings: Settings): Promise<void> {
  const account = await servedAccount(locationArg, opts.user, settings);
  // A store reached through another remote would only relay; and the run would lock nothing here.
  if (isRemoteLocation(account.location)) throw usageError(`dsync-server serves local mail, not '${account.location}'`);
  // A malformed location is refused while the error can still say so as the invoking user.
  parseLocation(account.location);
  becomeForGood(account);
  const rawlog = opts.rawlog !== undefined ? openRawlogFile(opts.rawlog) : undefined;
  const open = (req: OpenRequest): Promise<OpenedForPeer> => openForPeer(account.location, account.user, settings, req);
  // stdout carries the protocol alone: nothing else may write there.
  const stream = Duplex.from({ readable: process.stdin, writable: process.stdout });
  try {
    await serveStore(stream, { label: account.user ? `client (user ${account.user})` : 'client', compress: settings.dsync_compression !== 'none', rawlog: rawlog?.write, open });
  } finally {
    rawlog?.close();
  }
}
