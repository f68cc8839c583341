/**
 * The user name a client asks for, checked before anything (a userdb query, a path template)
 * is built from it. Templates check their values again as they expand them; this check comes
 * first so that a name that can never be a user is refused the same way whatever the userdb.
 */
import { MailferryError } from '../model/errors.js';

export const MAX_USER_BYTES = 255;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `name` cannot be a user's, or undefined when it may be one. */
export function userNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.includes('\0')) return 'contains a NUL byte';
  if (Buffer.byteLength(name, 'utf8') > MAX_USER_BYTES) return `is longer than ${MAX_USER_BYTES} bytes`;
  if (CONTROL.test(name)) return 'contains control characters';
  if (LONE_SURROGATE.test(name)) return 'is not valid Unicode';
  if (name.includes('/')) return "contains '/'";
  if (name === '.' || name === '..') return `is '${name}'`;
  return undefined;
}

/** The name as a log or an error shows it: quoted when it holds anything but plain characters, cut short. */
export function shownUserName(name: string): string {
  const cut = name.length > 80 ? `${name.slice(0, 80)}...` : name;
  return /^[A-Za-z0-9._@+=-]+$/.test(cut) ? cut : JSON.stringify(cut);
}

export function checkUserName(name: string): void {
  const problem = userNameProblem(name);
  if (problem) throw new MailferryError('data', `user name ${shownUserName(name)} ${problem}: refused`);
}
