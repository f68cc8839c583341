/**
 * Effective settings back to TOML, as `mailferry config` prints them (Dovecot's `doveconf -n`):
 * text the configuration file reader takes back to the same settings, secrets masked, the file
 * read and the -o overrides named in comments. Pure: no I/O.
 */
import { stringify } from 'smol-toml';
import { usageError } from '../model/errors.js';
import { maskConnect, maskPasswords, MASK } from './secret-mask.js';
import { DEFAULT_SETTINGS, SECRET_USERDB_KEYS, SETTINGS, type Settings, type UserDbSetting } from './settings.js';

export interface RenderConfigOptions {
  /** `changed`: only what differs from the defaults (-n); `all`: every setting, with descriptions. */
  mode: 'changed' | 'all';
  /** Only these settings (SETTING arguments), whether or not they differ from their defaults. */
  names?: readonly string[];
  /** The configuration file read, or undefined when none was. */
  file?: string;
  overrides: readonly string[];
}

/** A comment line can hold no line break: control characters are written as escapes. */
function commentText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

function isSecret(key: string): boolean {
  return Object.hasOwn(SETTINGS, key) && SETTINGS[key]!.secret === true;
}

/** A setting's value as printed: masked when secret, passwords inside any string masked. */
export function maskedValue(key: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (isSecret(key)) return value === '' ? value : MASK;
  return maskPasswords(value);
}

function maskedUserDbOption(key: string, value: string): string {
  if (key === 'connect') return maskConnect(value);
  if (SECRET_USERDB_KEYS.includes(key)) return value === '' ? value : MASK;
  return maskPasswords(value);
}

/** `-o key=value` as the comment shows it: the same masking as the value itself. */
export function maskedOverride(override: string): string {
  const eq = override.indexOf('=');
  if (eq <= 0) return maskPasswords(override);
  const key = override.slice(0, eq);
  return `${key}=${String(maskedValue(key, override.slice(eq + 1)))}`;
}

function line(key: string, value: unknown): string {
  return stringify({ [key]: value }).trimEnd();
}

/** The userdb as a string when it has nothing but driver and args (as -o writes it), else a table. */
function userdbLines(u: UserDbSetting): { inline?: string; table?: string[] } {
  const options = Object.entries(u.options);
  if (options.length === 0) {
    return { inline: line('userdb', maskPasswords(u.args === '' ? u.driver : `${u.driver}:${u.args}`)) };
  }
  const table = ['[userdb]', line('driver', u.driver)];
  if (u.args !== '') table.push(line('args', maskPasswords(u.args)));
  for (const [k, v] of options) table.push(line(k, maskedUserDbOption(k, v)));
  return { table };
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Unknown SETTING arguments are a command-line mistake (64), named. */
export function checkSettingNames(names: readonly string[]): void {
  const unknown = names.filter((n) => !Object.hasOwn(SETTINGS, n));
  if (unknown.length > 0) {
    throw usageError(`unknown setting${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${n}'`).join(', ')} (known: ${Object.keys(SETTINGS).join(', ')})`);
  }
}

export function renderConfig(settings: Settings, options: RenderConfigOptions): string {
  const out = [`# mailferry configuration: ${options.file === undefined ? 'no file read, built-in defaults' : commentText(options.file)}`];
  for (const o of options.overrides) out.push(`# -o ${commentText(maskedOverride(o))}`);
  const named = options.names !== undefined && options.names.length > 0;
  const keys = named ? [...new Set(options.names)] : Object.keys(SETTINGS);
  if (named) checkSettingNames(keys);
  // A TOML table ends only at the next table or the end: [userdb] must come last.
  let trailing: string[] = [];
  for (const key of keys) {
    const value = (settings as unknown as Record<string, unknown>)[key];
    const fallback = (DEFAULT_SETTINGS as unknown as Record<string, unknown>)[key];
    if (options.mode === 'changed' && !named && sameValue(value, fallback)) continue;
    const block: string[] = [];
    if (options.mode === 'all') {
      const secret = isSecret(key) ? ', printed masked' : '';
      block.push('', `# ${commentText(SETTINGS[key]!.describe)} (default: ${fallback === undefined ? 'not set' : commentText(String(fallback))}${secret})`);
    }
    if (value === undefined) {
      block.push(`# ${key} is not set`);
      out.push(...block);
      continue;
    }
    if (key === 'userdb') {
      const u = userdbLines(value as UserDbSetting);
      if (u.table) {
        trailing = [...block, ...(block.length === 0 ? [''] : []), ...u.table];
        continue;
      }
      block.push(u.inline!);
    } else {
      block.push(line(key, maskedValue(key, value)));
    }
    out.push(...block);
  }
  return `${[...out, ...trailing].join('\n')}\n`;
}
