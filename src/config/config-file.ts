/**
 * The configuration file: TOML whose top-level keys are the settings `-o` takes
 * (`mail_location = "maildir:~/Maildir"`), plus a `[userdb]` table for drivers that need more
 * than one string. Every mistake names the file, the line and the setting (exit 78).
 */
import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { MailferryError } from '../model/errors.js';
import { applyOverrides, applySetting, DEFAULT_SETTINGS, type Settings } from './settings.js';

export const DEFAULT_CONFIG_FILE = '/etc/mailferry/mailferry.toml';

/**
 * The line a key is written on, for messages: TOML parsers give values, not positions. Looks
 * for `key =` inside the right table (`table` undefined: before any table header).
 */
export function lineOfKey(text: string, key: string, table?: string): number | undefined {
  let current: string | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const header = /^\[\s*([^\]]+?)\s*\]/.exec(line);
    if (header) {
      current = header[1]!.replace(/^["']|["']$/g, '');
      if (table === undefined && current === key) return i + 1;
      continue;
    }
    if (current !== table) continue;
    const m = /^("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=/.exec(line);
    if (m && m[1]!.replace(/^["']|["']$/g, '') === key) return i + 1;
  }
  return undefined;
}

function where(file: string, text: string, key: string, table?: string): string {
  const line = lineOfKey(text, key, table);
  return line === undefined ? file : `${file} line ${line}`;
}

/** The settings a file's text gives, over the defaults. */
export function parseConfigText(text: string, file: string): Settings {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split('\n')[0]!.replace(/^Invalid TOML document:\s*/, '');
      throw new MailferryError('config', `${file} line ${err.line}: not valid TOML: ${first}`);
    }
    throw err;
  }
  const settings: Settings = { ...DEFAULT_SETTINGS };
  for (const [key, value] of Object.entries(doc)) {
    applySetting(settings, key, value, where(file, text, key));
  }
  if (settings.userdb) {
    const table = doc.userdb;
    if (typeof table === 'object' && table !== null) {
      for (const k of Object.keys(settings.userdb.options)) {
        if (!USERDB_KEYS.has(k)) {
          throw new MailferryError('config', `${where(file, text, k, 'userdb')}: unknown setting 'userdb.${k}' (known: driver, args, ${[...USERDB_KEYS].join(', ')})`);
        }
      }
    }
  }
  return settings;
}

/** Keys a `[userdb]` table may hold beside driver and args. */
const USERDB_KEYS = new Set(['connect', 'user_query', 'iterate_query']);

export interface LoadedConfig {
  settings: Settings;
  /** The file read, or undefined when there was none. */
  file?: string;
}

/**
 * `-c FILE` (an explicit file must exist), `-c ''` (none), or the default file when it exists;
 * then the `-o` overrides.
 */
export function loadConfig(configOption: string | undefined, overrides: readonly string[], extra: Partial<Settings> = {}): LoadedConfig {
  const file = configOption === undefined ? DEFAULT_CONFIG_FILE : configOption;
  let settings: Settings = { ...DEFAULT_SETTINGS };
  let used: string | undefined;
  if (file !== '') {
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // The default file is optional; a file named with -c is not.
      if (!(configOption === undefined && code === 'ENOENT')) {
        throw new MailferryError('config', `configuration file ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
      }
    }
    if (text !== undefined) {
      settings = parseConfigText(text, file);
      used = file;
    }
  }
  settings = applyOverrides({ ...settings, ...extra }, overrides);
  return { settings, file: used };
}
