/**
 * A session process: serves one authenticated connection's user, with that user's uid and
 * gid taken for good when started as root (a process reading what a peer sends keeps no way
 * back to root), on a socket (fd 4) the server relays the client's connection through: a
 * socket, not stdout, so a write never blocks the process while the client is slow to read.
 * One session's crash ends this process alone. It opens the store and takes the run lock as
 * `mailferry dsync-server` does, and ends when the client closes the connection, or when the
 * server goes away.
 */
import { Socket } from 'node:net';
import { installSignalCleanup, runCleanups } from '../model/cleanup.js';
import { exitCodeOf, MailferryError } from '../model/errors.js';
import { openForPeer } from '../remote/open-for-peer.js';
import { serveStore, type OpenedForPeer } from '../remote/store-server.js';
import type { OpenRequest } from '../remote/wire-ops.js';
import { runningAsRoot } from '../users/identity.js';
import type { ServedAccount } from './accounts.js';
import { countingStore } from './counting-store.js';
import { noCounts, SESSION_FD, type ServeMessage, type SessionReport } from './session-messages.js';

installSignalCleanup();
// What ps shows: a spare waiting for a connection, or a session serving one.
process.title = 'mailferry spare';

function report(r: SessionReport): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(r, undefined, {}, () => resolve());
  });
}

function becomeForGood(account: ServedAccount): void {
  if (!runningAsRoot()) return;
  if (account.uid === undefined) throw new MailferryError('permission', `user ${account.user}: no uid known`);
  const gid = account.gid ?? account.uid;
  process.setgroups!([gid]);
  process.setgid!(gid);
  process.setuid!(account.uid);
  if (account.home !== undefined) {
    process.env.HOME = account.home;
    process.env.XDG_STATE_HOME = `${account.home}/.local/state`;
  }
}

async function serve(msg: ServeMessage): Promise<never> {
  const counts = noCounts();
  const { account, settings } = msg;
  try {
    becomeForGood(account);
    // New mail trees and their index belong to the user alone, as Dovecot makes them.
    process.umask(0o077);
  } catch (err) {
    const e = err instanceof MailferryError ? err : new MailferryError('permission', `user ${account.user}: cannot take the user's uid: ${(err as Error).message}`);
    await report({ type: 'refused', kind: e.kind, message: e.message });
    process.exit(e.exitCode);
  }
  await report({ type: 'ready' });
  const open = async (req: OpenRequest): Promise<OpenedForPeer> => {
    const opened = await openForPeer(account.location, account.user, settings, req);
    return { ...opened, store: countingStore(opened.store, counts) };
  };
  const stream = new Socket({ fd: SESSION_FD, readable: true, writable: true, allowHalfOpen: true });
  let code = 0;
  let error: string | undefined;
  try {
    await serveStore(stream, { label: msg.label, compress: msg.compress, open, maxFramePayload: settings.server_max_frame_size });
  } catch (err) {
    code = exitCodeOf(err);
    error = err instanceof MailferryError ? err.message : `internal error: ${(err as Error)?.stack ?? String(err)}`;
    // The decoder names the limit's value; the log names the setting that sets it too.
    if (/ more than the \d+ byte limit$/.test(error)) error += ' (server_max_frame_size)';
  }
  await report({ type: 'done', counts, ...(error !== undefined ? { error } : {}) });
  process.exit(code);
}

process.once('message', (msg: ServeMessage) => {
  if (msg?.type !== 'serve') process.exit(64);
  process.title = 'mailferry session';
  serve(msg).catch(async (err: unknown) => {
    await report({ type: 'done', counts: noCounts(), error: `internal error: ${(err as Error)?.stack ?? String(err)}` });
    process.exit(exitCodeOf(err));
  });
});

// Without the server nobody relays the client's bytes or logs the session: stop as a killed run would.
process.on('disconnect', () => {
  runCleanups();
  process.exit(75);
});
