/**
 * The control commands answered by a shared queue itself, with no replicator's socket: a fleet
 * on PostgreSQL can be looked at and steered from any host that can reach the database. The
 * answers are the daemon's, but for what only a running daemon knows: which users it watches
 * (left out), and its workers (`dsync-status` lists every claim of the fleet instead, with the
 * process holding it as host:pid). `add` and `replicate` of a user the queue does not know look
 * the user up in the userdb, as the daemon does; a user added here is picked up by whichever
 * replicator claims it.
 */
import type { Settings } from '../config/settings.js';
import { openUserDb } from '../config/userdb/open-userdb.js';
import { configError, MailferryError } from '../model/errors.js';
import { isMask, maskMatcher, selectUsers } from '../users/user-selection.js';
import type { ControlReply, ControlRequest } from './control-protocol.js';
import { PostgresReplicationQueue, type HeldClaim } from './postgres-replication-queue.js';
import type { ReplicationQueue } from './replication-queue.js';
import { isRun, replicaRun } from './replica-users.js';

export type QueueReply =
  | Exclude<Extract<ControlReply, { ok: true }>, { cmd: 'dsync-status' }>
  | { ok: true; cmd: 'claims'; now: number; claims: HeldClaim[] };

const nouser = (text: string) => new MailferryError('nouser', text);

/** The users of the userdb with a mail_replica that `mask` names (one name, or a mask). */
async function fromUserDb(settings: Settings, mask: string): Promise<string[]> {
  const userdb = await openUserDb(settings);
  if (userdb === undefined) throw configError(`adding ${mask} needs the userdb: set userdb in the configuration`);
  try {
    const users: string[] = [];
    for await (const s of selectUsers({ kind: 'names', masks: [mask] }, userdb)) {
      if (!('record' in s)) continue;
      const run = replicaRun(s.record, settings);
      if (!isRun(run)) {
        if (!isMask(mask)) throw new MailferryError(run.skipped ? 'data' : 'config', run.error);
        continue;
      }
      users.push(run.user);
    }
    if (users.length === 0) throw nouser(isMask(mask) ? `no user of ${userdb.description} with a mail_replica matches '${mask}'` : `user ${mask}: no such user in ${userdb.description}`);
    return users;
  } finally {
    await userdb.close?.();
  }
}

export async function answerFromQueue(queue: ReplicationQueue, request: ControlRequest, settings: Settings): Promise<QueueReply> {
  const now = Date.now();
  const matching = async (mask: string) => (await queue.list(isMask(mask) ? maskMatcher(mask) : (u) => u === mask)).map((u) => u.user);
  switch (request.cmd) {
    case 'status':
      if (request.mask !== undefined) return { ok: true, cmd: 'status-users', now, users: await queue.list(maskMatcher(request.mask)) };
      return { ok: true, cmd: 'status', now, counts: await queue.counts(now), watched: 0, polled: 0 };
    case 'dsync-status': {
      if (!(queue instanceof PostgresReplicationQueue)) throw configError(`${queue.description} is one replicator's own: ask it over its control socket`);
      return { ok: true, cmd: 'claims', now, claims: await queue.claims() };
    }
    case 'replicate': {
      let users = await matching(request.mask);
      if (users.length === 0) {
        if (isMask(request.mask)) throw nouser(`no user of ${queue.description} matches '${request.mask}'`);
        users = await fromUserDb(settings, request.mask);
        await queue.addUsers(users, now);
      }
      for (const u of users) await queue.notify(u, request.priority, now, { full: request.full });
      return { ok: true, cmd: 'replicate', users };
    }
    case 'add': {
      const users = await fromUserDb(settings, request.mask);
      await queue.addUsers(users, now);
      return { ok: true, cmd: 'add', users };
    }
    case 'remove': {
      const users = await matching(request.mask);
      if (users.length === 0) throw nouser(`no user of ${queue.description} matches '${request.mask}'`);
      await queue.removeUsers(users);
      return { ok: true, cmd: 'remove', users };
    }
  }
}
