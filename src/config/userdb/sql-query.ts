/**
 * Dovecot's SQL query templates with their %-variables turned into bound parameters. Dovecot
 * pastes each value into the SQL text with quotes escaped; here no value ever becomes SQL
 * text: every variable is a parameter ($1 for PostgreSQL, ? for SQLite), so a user name such
 * as `o'brien` or `x'; drop table users; --` is only ever a value.
 *
 * Queries are written for Dovecot, with quotes around the variables: `WHERE userid = '%u'`.
 * A string literal that is exactly one variable becomes the parameter itself; a literal that
 * mixes text and variables (`'%n@%d'`, `'/srv/%d/%n'`) becomes a concatenation of its pieces,
 * so the query means what it meant under Dovecot. Variables inside a quoted identifier, a
 * dollar-quoted string, or glued to a name (`users_%d`) cannot be values and are refused when
 * the configuration is read; variables in comments are dropped. Pure: no I/O.
 */
import { MailferryError } from '../../model/errors.js';
import { expandTemplate, type TemplateVars } from '../template.js';

export type SqlDialect = 'pg' | 'sqlite';

export interface BoundQuery {
  text: string;
  values: string[];
}

export interface BindOptions {
  dialect: SqlDialect;
  /** The setting the query comes from (`user_query`), for messages. */
  what: string;
  /**
   * PostgreSQL: cast every parameter to text. A parameter alone in a select list
   * (`SELECT '%u' AS user`) has no type PostgreSQL can infer, where the quoted literal had;
   * a bare parameter is tried first because a cast would turn a comparison with a citext
   * column into a case-sensitive text comparison.
   */
  castParams?: boolean;
}

const MARK = '\0';
const IDENT = /[A-Za-z0-9_$\x80-\uffff]/;

function refuse(what: string, problem: string): MailferryError {
  return new MailferryError('config', `${what}: ${problem}`);
}

/** Scans a quoted run starting at `start` (the opening quote); returns the index after the closing one. */
function quotedEnd(text: string, start: number, quote: string, backslashEscapes: boolean, what: string, kind: string): number {
  let i = start + 1;
  for (;;) {
    if (i >= text.length) throw refuse(what, `unterminated ${kind} in the query`);
    const c = text[i]!;
    if (backslashEscapes && c === '\\') {
      if (text[i + 1] === MARK) throw refuse(what, 'a backslash before a variable in an E\'\' string cannot be bound as a value');
      i += 2;
      continue;
    }
    if (c === quote) {
      if (text[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
}

/** `template` with `vars` bound: the SQL text (placeholders only) and the values, in order. */
export function bindQuery(template: string, vars: TemplateVars, options: BindOptions): BoundQuery {
  const { dialect, what } = options;
  if (template.includes(MARK)) throw refuse(what, 'the query contains a NUL character');
  const expanded: string[] = [];
  const text = expandTemplate(template, vars, {
    what,
    escape: (value) => {
      expanded.push(value);
      return `${MARK}${expanded.length - 1}${MARK}`;
    },
  });

  const values: string[] = [];
  const param = (index: number, inConcat: boolean): string => {
    values.push(expanded[index]!);
    if (dialect === 'sqlite') return '?';
    return options.castParams || inConcat ? `CAST($${values.length} AS text)` : `$${values.length}`;
  };
  /** The variable index of the marker at `i`, and the index after it. */
  const marker = (at: number): { index: number; end: number } => {
    const close = text.indexOf(MARK, at + 1);
    return { index: Number(text.slice(at + 1, close)), end: close + 1 };
  };
  const withoutMarkers = (s: string) => s.replace(/\0\d+\0/g, '');

  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === MARK) {
      const m = marker(i);
      const before = out.at(-1);
      const after = text[m.end];
      if ((before !== undefined && IDENT.test(before)) || (after !== undefined && IDENT.test(after))) {
        throw refuse(what, 'a variable that is part of a name (such as users_%d) cannot be bound as a value; put it in quotes if it is one');
      }
      out += param(m.index, false);
      i = m.end;
      continue;
    }
    if (c === "'") {
      // E'..' (PostgreSQL) reads backslash escapes; N'..' is a plain string.
      const prefixed = /(^|[^A-Za-z0-9_$])([EeNn])$/.exec(out);
      const prefix = prefixed ? prefixed[2]! : '';
      const backslashes = dialect === 'pg' && /[Ee]/.test(prefix);
      const end = quotedEnd(text, i, "'", backslashes, what, 'string');
      const body = text.slice(i + 1, end - 1);
      if (!body.includes(MARK)) {
        out += text.slice(i, end);
        i = end;
        continue;
      }
      out = out.slice(0, out.length - prefix.length);
      const pieces: string[] = [];
      let j = 0;
      const whole = /^\0\d+\0$/.test(body);
      while (j < body.length) {
        const k = body.indexOf(MARK, j);
        if (k < 0) {
          pieces.push(`${prefix}'${body.slice(j)}'`);
          break;
        }
        if (k > j) pieces.push(`${prefix}'${body.slice(j, k)}'`);
        const close = body.indexOf(MARK, k + 1);
        pieces.push(param(Number(body.slice(k + 1, close)), !whole));
        j = close + 1;
      }
      out += whole ? pieces[0]! : `(${pieces.join(' || ')})`;
      i = end;
      continue;
    }
    if (c === '"' || (dialect === 'sqlite' && (c === '`' || c === '['))) {
      const end = c === '[' ? text.indexOf(']', i) + 1 : quotedEnd(text, i, c, false, what, 'quoted name');
      if (end === 0) throw refuse(what, 'unterminated [name] in the query');
      const ident = text.slice(i, end);
      if (ident.includes(MARK)) throw refuse(what, `a variable inside a quoted name (${c}...) cannot be bound as a value`);
      out += ident;
      i = end;
      continue;
    }
    if (c === '-' && next === '-') {
      const nl = text.indexOf('\n', i);
      const end = nl < 0 ? text.length : nl;
      out += withoutMarkers(text.slice(i, end));
      i = end;
      continue;
    }
    if (c === '/' && next === '*') {
      // PostgreSQL nests block comments; SQLite's end at the first */.
      let depth = 0;
      let j = i;
      for (;;) {
        if (j >= text.length) throw refuse(what, 'unterminated /* comment in the query');
        if (text.startsWith('/*', j) && (depth === 0 || dialect === 'pg')) {
          depth++;
          j += 2;
        } else if (text.startsWith('*/', j)) {
          depth--;
          j += 2;
          if (depth === 0) break;
        } else j++;
      }
      out += withoutMarkers(text.slice(i, j));
      i = j;
      continue;
    }
    if (dialect === 'pg' && c === '$' && !(out.length > 0 && IDENT.test(out.at(-1)!))) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i));
      if (tag) {
        const close = text.indexOf(tag[0], i + tag[0].length);
        if (close < 0) throw refuse(what, `unterminated ${tag[0]} string in the query`);
        const body = text.slice(i, close + tag[0].length);
        if (body.includes(MARK)) throw refuse(what, `a variable inside a ${tag[0]} string cannot be bound as a value`);
        out += body;
        i = close + tag[0].length;
        continue;
      }
    }
    out += c;
    i++;
  }
  return { text: out, values };
}

/**
 * Checks a query template once, when the configuration is read: unknown variables, variables
 * where no value can go, unterminated strings. `sample` are the variables of a made-up user.
 */
export function checkQueryTemplate(template: string, sample: TemplateVars, options: BindOptions): void {
  bindQuery(template, sample, options);
}
