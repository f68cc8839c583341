/**
 * The local side of a peer's open request, shared by `dsync-server` (over ssh) and a server
 * session (over TLS): the store opened as the location says, and the run lock taken here, on
 * this side, as a local run takes it. A location that is not to be created (a source, a dry
 * run) and does not exist is "not found", so the client can plan a dry run against an empty
 * store as it does for a local one.
 */
import { existsSync } from 'node:fs';
import { acquireRunLocks } from '../cli/run-lock.js';
import { storeOptions } from '../cli/settings.js';
import { lockDirOf, parseLocation } from '../config/location.js';
import type { Settings } from '../config/settings.js';
import { notFoundError } from '../model/errors.js';
import { openStore } from '../storage/open-store.js';
import type { OpenedForPeer } from './store-server.js';
import type { OpenRequest } from './wire-ops.js';

export async function openForPeer(location: string, user: string | undefined, settings: Settings, req: OpenRequest): Promise<OpenedForPeer> {
  const loc = parseLocation(location);
  if (!req.create && loc.kind !== 'imap' && !existsSync(loc.root)) throw notFoundError(`${location} does not exist`);
  const base = { ...storeOptions(settings), lockTimeoutSeconds: req.lockSeconds, create: req.create, force: req.force };
  const lockDir = lockDirOf(loc);
  // A location created by this open is locked right after; one that exists, before.
  const lockNow = req.runLock && existsSync(lockDir);
  let release = lockNow ? await acquireRunLocks([{ dir: lockDir, mayCreate: false }], req.lockSeconds) : undefined;
  try {
    const store = await openStore(location, { ...base, user });
    if (req.runLock && !release) {
      try {
        release = await acquireRunLocks([{ dir: lockDir, mayCreate: loc.kind === 'imap' || lockDir !== (loc as { root?: string }).root }], req.lockSeconds);
      } catch (err) {
        await store.close();
        throw err;
      }
    }
    return { store, location, release };
  } catch (err) {
    release?.();
    throw err;
  }
}
