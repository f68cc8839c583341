/**
 * Checks for decoded payloads: every value a peer sends is taken apart by these before use,
 * and anything of the wrong type, out of range or too long is a {@link ProtocolError} naming
 * the field. Values are rebuilt, never passed through, so no unexpected key survives.
 */
import { SYSTEM_FLAGS, type SystemFlag } from '../storage/store.js';
import { ProtocolError } from './protocol-error.js';

/** Takes a decoded value apart; `path` names it in errors (`reply to getMessages: messages[3].uid`). */
export type Check<T> = (value: unknown, path: string) => T;

function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}

export function fail(path: string, expected: string, value: unknown): never {
  throw new ProtocolError(`${path}: expected ${expected}, got ${shown(value)}`);
}

export function int(min: number, max: number): Check<number> {
  return (v, path) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(path, `an integer ${min}..${max}`, v);
    return v;
  };
}

export const UINT32_MAX = 0xffffffff;
export const uint32 = int(0, UINT32_MAX);
export const uid = int(1, UINT32_MAX);
/** UIDNEXT may be one past the largest UID. */
export const uidNext = int(1, UINT32_MAX + 1);
export const count = int(0, Number.MAX_SAFE_INTEGER);
/** Times in seconds or milliseconds, before 1970 too. */
export const time = int(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);

/** A clock reading in milliseconds, fractions allowed (a file's ctimeMs). */
export const clockMs: Check<number> = (v, path) => {
  if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > Number.MAX_SAFE_INTEGER) fail(path, 'a time in milliseconds', v);
  return v;
};

export const bool: Check<boolean> = (v, path) => {
  if (typeof v !== 'boolean') fail(path, 'true or false', v);
  return v;
};

export function str(maxLength: number, pattern?: RegExp, what = 'a string'): Check<string> {
  return (v, path) => {
    if (typeof v !== 'string' || v.length > maxLength || (pattern !== undefined && !pattern.test(v))) fail(path, `${what} of at most ${maxLength} characters`, v);
    return v;
  };
}

export function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'an object', v);
  return v as Record<string, unknown>;
}

/** Absent (or null) gives undefined. */
export function optional<T>(check: Check<T>): Check<T | undefined> {
  return (v, path) => (v === undefined || v === null ? undefined : check(v, path));
}

export function arrayOf<T>(item: Check<T>, maxItems: number): Check<T[]> {
  return (v, path) => {
    if (!Array.isArray(v)) fail(path, 'an array', v);
    if (v.length > maxItems) fail(path, `at most ${maxItems} items`, v);
    return v.map((x, i) => item(x, `${path}[${i}]`));
  };
}

/** A fixed-length array, as compact records travel. */
export function tuple(v: unknown, path: string, length: number): unknown[] {
  if (!Array.isArray(v) || v.length !== length) fail(path, `an array of ${length}`, v);
  return v;
}

/**
 * One level of a mailbox name: never empty, never `.` or `..`, no `/` and no NUL, so no store
 * can be steered into a path outside its root, whatever it does with the name.
 */
export const MAX_NAME_LEVEL = 1000;
export const MAX_NAME_DEPTH = 100;

export const nameLevel: Check<string> = (v, path) => {
  if (typeof v !== 'string' || v === '' || v.length > MAX_NAME_LEVEL) fail(path, `a non-empty mailbox name level of at most ${MAX_NAME_LEVEL} characters`, v);
  if (v === '.' || v === '..') fail(path, "a mailbox name level other than '.' and '..'", v);
  if (v.includes('/')) fail(path, "a mailbox name level without '/'", v);
  if (v.includes('\u0000')) fail(path, 'a mailbox name level without NUL', v);
  return v;
};

export const mailboxName: Check<string[]> = (v, path) => {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_NAME_DEPTH) fail(path, `a mailbox name of 1..${MAX_NAME_DEPTH} levels`, v);
  return v.map((x, i) => nameLevel(x, `${path}[${i}]`));
};

export const mailboxGuid = str(32, /^[0-9a-f]{32}$/, '32 lowercase hex digits');

/**
 * A message GUID: a Maildir basename, a Dovecot X-GUID, a header hash. Stores may make file
 * names of it, so it is held to what a file name can safely be.
 */
export const messageGuid: Check<string> = (v, path) => {
  if (typeof v !== 'string' || v === '' || v.length > 255) fail(path, 'a message GUID of 1..255 characters', v);
  // eslint-disable-next-line no-control-regex
  if (v === '.' || v === '..' || v.includes('/') || /[\u0000-\u001f\u007f]/.test(v)) fail(path, "a message GUID without '/', control characters, or '.'/'..' alone", v);
  return v;
};

export const MAX_KEYWORDS = 1000;
export const keyword: Check<string> = (v, path) => {
  if (typeof v !== 'string' || v === '' || v.length > 1000) fail(path, 'a keyword of 1..1000 characters', v);
  if (/[\u0000\r\n]/.test(v)) fail(path, 'a keyword without NUL or line ends', v);
  return v;
};
export const keywords = arrayOf(keyword, MAX_KEYWORDS);

export const specialUse = arrayOf(str(64, /^\\[A-Za-z]+$/, 'a special-use attribute such as \\Sent'), 16);

/** A store id or a peer key (`<id>:backup`): any text without NUL or line ends. */
export const peerKey = str(512, /^[^\u0000\r\n]+$/, 'an identifier');

/** Flags travel as Dovecot's bits: \Answered 1, \Flagged 2, \Deleted 4, \Seen 8, \Draft 16. */
export function flagBits(flags: readonly SystemFlag[]): number {
  let bits = 0;
  for (const f of flags) {
    const i = SYSTEM_FLAGS.indexOf(f);
    if (i >= 0) bits |= 1 << i;
  }
  return bits;
}

export const flags: Check<SystemFlag[]> = (v, path) => {
  const bits = int(0, (1 << SYSTEM_FLAGS.length) - 1)(v, path);
  return SYSTEM_FLAGS.filter((_, i) => (bits & (1 << i)) !== 0);
};
