/**
 * The settings a command runs with: the configuration file (-c), then every -o over it; and
 * what of them the stores take.
 */
import { loadConfig } from '../config/config-file.js';
import type { Settings } from '../config/settings.js';
import type { OpenStoreOptions } from '../storage/open-store.js';

export type { Settings } from '../config/settings.js';

export interface SettingsOptions {
  o: string[];
  config?: string;
  passwordFile?: string;
}

export function settingsFrom(globals: SettingsOptions): Settings {
  return loadConfig(globals.config, globals.o, { password_file: globals.passwordFile }).settings;
}

export function storeOptions(settings: Settings): OpenStoreOptions {
  // oauth2TokenCmd is read by the IMAP store only (ImapStoreOptions).
  const imap = settings.oauth2_token_cmd ? { oauth2TokenCmd: settings.oauth2_token_cmd } : {};
  const remote = { command: settings.dsync_remote_cmd, compress: settings.dsync_compression !== 'none', port: settings.server_port, secretFile: settings.server_secret_file };
  return { fsync: settings.mail_fsync !== 'never', lockTimeoutSeconds: settings.lock_timeout, passwordFile: settings.password_file, remote, ...imap };
}
