/**
 * Hiding secrets in settings before they are printed (`mailferry config`). Masking is
 * idempotent (a masked value masks to itself), so a printed configuration read back prints the
 * same. Pure: no I/O.
 */

export const MASK = '********';

/** `scheme://user:PASSWORD@host`: the userinfo ends at the last `@` before the path. */
const URI_USERINFO = /([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#\s]*)@/g;

/** Names of settings, fields and parameters that hold a secret. */
const SECRET_NAME = /(password|passwd|secret|token)$/i;

/**
 * `password=VALUE` as a URI query parameter or a libpq keyword (`password = 'a b'`), and
 * relatives (`sslpassword`, `db_password`, `--client-secret=`, `token=`). A quoted value runs to
 * its closing quote, escapes included; an unquoted one to a space or `&`.
 */
const KEYWORD_SECRET = /([A-Za-z0-9_-]*(?:password|passwd|secret|token)\s*=\s*)('(?:[^'\\]|\\.|'')*'?|"(?:[^"\\]|\\.)*"?|[^\s&]+)/gi;

/** Every password a string carries in a URI's userinfo or a `password=` pair, masked. */
export function maskPasswords(value: string): string {
  return value
    .replace(URI_USERINFO, (_m, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      return colon < 0 ? `${scheme}${userinfo}@` : `${scheme}${userinfo.slice(0, colon)}:${MASK}@`;
    })
    .replace(KEYWORD_SECRET, (_m, key: string) => `${key}${MASK}`);
}

/**
 * One `key = value` pair of a libpq connection string; a quoted value may hold `\'` or, as
 * Dovecot's dovecot-sql.conf.ext examples write it, `''`.
 */
const CONNINFO_PAIR = /^(\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*)('(?:[^'\\]|\\.|'')*'|[^\s'\\]+)/;

/** libpq `key=value` pairs with secret values masked, or undefined when it is not such a list. */
function maskConninfo(value: string): string | undefined {
  let rest = value;
  let out = '';
  while (rest.trim() !== '') {
    const m = CONNINFO_PAIR.exec(rest);
    if (!m) return undefined;
    out += SECRET_NAME.test(m[2]!) ? `${m[1]}${MASK}` : m[0];
    rest = rest.slice(m[0].length);
  }
  return out === '' ? undefined : out + rest;
}

/** A URI with its password and secret parameters masked, checked by parsing it as a client would. */
function maskUri(value: string): string | undefined {
  let url: URL;
  let masked: URL;
  const text = maskPasswords(value);
  try {
    url = new URL(value.trim());
    masked = new URL(text.trim());
  } catch {
    return undefined;
  }
  if (url.password !== '' && masked.password !== MASK) return undefined;
  for (const [name] of url.searchParams) {
    if (SECRET_NAME.test(name) && masked.searchParams.getAll(name).some((v) => v !== MASK)) return undefined;
  }
  return text;
}

/**
 * A database connection string: a URI (`postgresql://user:pw@host/db?sslpassword=x`) or libpq
 * `key=value` pairs keeps everything but its passwords, an SQLite file (`sqlite:/path`, `/path`)
 * has none; anything else, a URI no client could read included, is hidden whole, since where a
 * password sits in it cannot be told.
 */
export function maskConnect(value: string): string {
  if (value === '') return value;
  if (/^\s*(sqlite:(?!\/\/[^/])|\/)/i.test(value)) return maskPasswords(value);
  const masked = /^\s*[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value) ? maskUri(value) : maskConninfo(value);
  return masked ?? MASK;
}
