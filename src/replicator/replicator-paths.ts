/**
 * Where the replicator keeps its queue, fingerprints, pid file and control socket: the
 * replicator_state_dir setting, else `replicator` in mailferry's state directory (the one the
 * mbox and IMAP stores use: $XDG_STATE_HOME/mailferry, or ~/.local/state/mailferry).
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Settings } from '../config/settings.js';
import { replicatorSettingsOf } from './replicator-settings.js';

export const SOCKET_FILE = 'replicator.sock';

export function replicatorStateDir(settings: Settings): string {
  const { stateDir } = replicatorSettingsOf(settings);
  if (stateDir) return stateDir;
  const stateHome = process.env.XDG_STATE_HOME || join(process.env.HOME ?? homedir(), '.local', 'state');
  return join(stateHome, 'mailferry', 'replicator');
}

export function defaultSocketPath(settings: Settings): string {
  return join(replicatorStateDir(settings), SOCKET_FILE);
}
