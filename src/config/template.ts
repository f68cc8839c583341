/**
 * Dovecot's %-variables in settings and userdb fields: `%u` / `%{user}`, `%n` / `%{username}`,
 * `%d` / `%{domain}`, `%h` / `%{home}`, with Dovecot's modifiers `L` (lowercase), `U`
 * (uppercase), `R` (reverse), `M` (MD5 hex) and a substring `%OFFSET.WIDTHx` (`%2n` = first two
 * characters, `%2.1n` = the third, a negative offset counts from the end) for spread-out trees.
 * Pure: no I/O.
 */
import { createHash } from 'node:crypto';
import { MailferryError } from '../model/errors.js';

/** Long names and their one-letter forms. */
const SHORT: Record<string, string> = { u: 'user', n: 'username', d: 'domain', h: 'home' };

export type TemplateVars = Record<string, string | undefined>;

/** The variables of one user: user alice@example.org gives username alice, domain example.org. */
export function userVars(user: string, home?: string, extra: TemplateVars = {}): TemplateVars {
  const at = user.indexOf('@');
  return {
    ...extra,
    user,
    username: at < 0 ? user : user.slice(0, at),
    domain: at < 0 ? '' : user.slice(at + 1),
    home,
  };
}

export interface ExpandOptions {
  /** Applied to every expanded value (for example SQL quoting); the template's own text is kept. */
  escape?: (value: string, name: string) => string;
  /** Checks every expanded value before it is used; throws to refuse it. */
  check?: (value: string, name: string) => void;
  /** What the template belongs to, for error messages (`mail_location`, `user_query`). */
  what: string;
}

function templateError(what: string, template: string, problem: string): MailferryError {
  return new MailferryError('config', `${what} '${template}': ${problem}`);
}

function applyModifiers(value: string, modifiers: string): string {
  let v = value;
  for (const m of modifiers) {
    if (m === 'L') v = v.toLowerCase();
    else if (m === 'U') v = v.toUpperCase();
    else if (m === 'R') v = [...v].reverse().join('');
    else if (m === 'M') v = createHash('md5').update(v).digest('hex');
  }
  return v;
}

function substring(value: string, offset: string | undefined, width: string | undefined): string {
  if (offset === undefined) return value;
  const chars = [...value];
  // `%3n` is a width alone; `%2.1n` an offset then a width.
  if (width === undefined) return chars.slice(0, Number(offset)).join('');
  let start = Number(offset);
  if (start < 0) start = Math.max(0, chars.length + start);
  return chars.slice(start, start + Number(width)).join('');
}

const VARIABLE = /%(%|([LURM]*)(-?\d+)?(?:\.(\d+))?(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z])))/g;

/** Expands every variable of `template`; an unknown variable or a lone `%` is a config error. */
export function expandTemplate(template: string, vars: TemplateVars, options: ExpandOptions): string {
  let out = '';
  let last = 0;
  for (const m of template.matchAll(VARIABLE)) {
    out += template.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[1] === '%') {
      out += '%';
      continue;
    }
    const [, , modifiers = '', offset, width, long, short] = m;
    const name = long ?? SHORT[short!];
    if (name === undefined || !(name in vars)) {
      throw templateError(options.what, template, `unknown variable ${long ? `%{${long}}` : `%${short}`}`);
    }
    const raw = vars[name];
    if (raw === undefined) throw templateError(options.what, template, `%{${name}} has no value for this user`);
    const value = applyModifiers(substring(raw, offset, width), modifiers);
    options.check?.(value, name);
    out += options.escape ? options.escape(value, name) : value;
  }
  const rest = template.slice(last);
  if (rest.includes('%')) throw templateError(options.what, template, `a '%' that is not a variable (write %% for a literal one)`);
  return out + rest;
}

/**
 * A value that is about to become part of a path: it must stay one path component. The home
 * directory comes from the userdb and may hold slashes; it must be absolute.
 */
export function checkPathValue(user: string): (value: string, name: string) => void {
  return (value, name) => {
    if (name === 'home') {
      if (!value.startsWith('/') || value.includes('\0') || value.split('/').includes('..')) {
        throw new MailferryError('data', `user ${user}: home '${value}' is not an absolute path without '..'`);
      }
      return;
    }
    const bad =
      value.includes('/') ? "contains '/'" :
      value.includes('\0') ? 'contains a NUL byte' :
      value === '.' || value === '..' ? `is '${value}'` :
      value === '' && name !== 'domain' ? 'is empty' : undefined;
    if (bad) throw new MailferryError('data', `user ${user}: %{${name}} ${bad}, which cannot be part of a mail path`);
  };
}

/** A path template for one user: variables, then `~` at the start for the home directory. */
export function expandPathTemplate(template: string, vars: TemplateVars, what: string): string {
  const user = vars.user ?? '?';
  let t = template;
  const tilde = /^((?:[a-z]+:)?)~(?=\/|:|$)/i.exec(t);
  if (tilde) {
    if (!vars.home) throw new MailferryError('data', `user ${user}: ${what} '${template}' uses ~ but the user has no home directory`);
    t = `${tilde[1]}%{home}${t.slice(tilde[0].length)}`;
  }
  return expandTemplate(t, vars, { what, check: checkPathValue(user) });
}
