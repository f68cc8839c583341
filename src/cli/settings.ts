/**
 * `-o setting=value` overrides, named as Dovecot names the same knobs.
 */
import { usageError } from '../model/errors.js';
import type { OpenStoreOptions } from '../storage/open-store.js';

export interface Settings {
  mail_location?: string;
  mail_fsync: 'always' | 'optimized' | 'never';
  lock_timeout: number;
  /** From the global --password-file: the password for an IMAP location, first line of the file. */
  password_file?: string;
  /** A command printing an OAuth2 access token, for IMAP locations with auth=xoauth2|oauthbearer. */
  oauth2_token_cmd?: string;
}

const DEFAULTS: Settings = { mail_fsync: 'optimized', lock_timeout: 30 };

export function parseSettings(overrides: readonly string[], passwordFile?: string): Settings {
  const settings: Settings = { ...DEFAULTS, password_file: passwordFile };
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw usageError(`invalid -o '${o}': expected setting=value`);
    const key = o.slice(0, eq);
    const value = o.slice(eq + 1);
    switch (key) {
      case 'mail_location':
        settings.mail_location = value;
        break;
      case 'mail_fsync':
        if (value !== 'always' && value !== 'optimized' && value !== 'never') {
          throw usageError(`invalid -o mail_fsync=${value}: expected always, optimized or never`);
        }
        settings.mail_fsync = value;
        break;
      case 'lock_timeout': {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 0) throw usageError(`invalid -o lock_timeout=${value}: expected whole seconds`);
        settings.lock_timeout = n;
        break;
      }
      case 'oauth2_token_cmd':
        settings.oauth2_token_cmd = value;
        break;
      default:
        throw usageError(`unknown setting '${key}' in -o ${o} (known: mail_location, mail_fsync, lock_timeout, oauth2_token_cmd)`);
    }
  }
  return settings;
}

export function storeOptions(settings: Settings): OpenStoreOptions {
  // oauth2TokenCmd is read by the IMAP store only (ImapStoreOptions).
  const imap = settings.oauth2_token_cmd ? { oauth2TokenCmd: settings.oauth2_token_cmd } : {};
  return { fsync: settings.mail_fsync !== 'never', lockTimeoutSeconds: settings.lock_timeout, passwordFile: settings.password_file, ...imap };
}
