/**
 * Maildir file names as Dovecot reads and writes them
 * (maildir-filename.c, maildir-filename-flags.c).
 *
 * Dovecot splits a name two ways: the identity ("base name", used by
 * dovecot-uidlist and its hash) ends at the FIRST ':', while flags are read
 * from after the LAST ':' and only when that part starts with "2,". The two
 * only differ for names with several colons, which Dovecot never creates.
 */

export interface MaildirFilename {
  /** everything before ':' (the GUID in Dovecot's terms, including ,S= and ,W=) */
  basename: string;
  size?: number;
  vsize?: number;
  /** after ':' e.g. '2,FS', undefined when no ':' */
  info?: string;
  /** letters after '2,' sorted, '' when none */
  flagLetters: string;
}

export type SystemFlag = '\\Draft' | '\\Flagged' | '\\Answered' | '\\Seen' | '\\Deleted';

export const FLAG_LETTERS: Record<SystemFlag, string> = {
  '\\Draft': 'D',
  '\\Flagged': 'F',
  '\\Answered': 'R',
  '\\Seen': 'S',
  '\\Deleted': 'T',
};

const LETTER_FLAGS = new Map<string, SystemFlag>(
  Object.entries(FLAG_LETTERS).map(([flag, letter]) => [letter, flag as SystemFlag]),
);

/** Sorted by UTF-16 code unit, which for the ASCII flag letters is Dovecot's byte order. */
const sortUnique = (chars: string): string => (isStrictlySorted(chars) ? chars : [...new Set(chars)].sort().join(''));

/** Most names already carry their letters sorted and once each (Dovecot writes them so): no work then. */
function isStrictlySorted(s: string): boolean {
  for (let i = 1; i < s.length; i++) if (s.charCodeAt(i - 1) >= s.charCodeAt(i)) return false;
  return true;
}

/**
 * Reads ,S=<n> or ,W=<n>. Like Dovecot, only the first ",X=" counts and the
 * digits must end at ',' or the end; unlike Dovecot we require at least one
 * digit and look only inside the base name.
 */
function sizeField(basename: string, key: 'S' | 'W'): number | undefined {
  const at = basename.indexOf(key === 'S' ? ',S=' : ',W=');
  if (at < 0) return undefined;
  // Digits by hand: this runs twice for every file of every mailbox a scan lists.
  let i = at + 3;
  let n = 0;
  for (; i < basename.length; i++) {
    const c = basename.charCodeAt(i);
    if (c === 44) break; // ','
    if (c < 48 || c > 57) return undefined;
    n = n * 10 + (c - 48);
  }
  if (i === at + 3) return undefined;
  return Number.isSafeInteger(n) ? n : undefined;
}

export function parseMaildirFilename(name: string): MaildirFilename {
  const colon = name.indexOf(':');
  const basename = colon < 0 ? name : name.slice(0, colon);
  const parsed: MaildirFilename = { basename, flagLetters: '' };
  const size = sizeField(basename, 'S');
  const vsize = sizeField(basename, 'W');
  if (size !== undefined) parsed.size = size;
  if (vsize !== undefined) parsed.vsize = vsize;
  if (colon >= 0) {
    parsed.info = name.slice(colon + 1);
    const last = name.slice(name.lastIndexOf(':') + 1);
    if (last.startsWith('2,')) {
      // A further ',' starts another flag set that Dovecot neither reads nor drops.
      const end = last.indexOf(',', 2);
      parsed.flagLetters = sortUnique(last.slice(2, end < 0 ? undefined : end));
    }
  }
  return parsed;
}

/**
 * Whether the flags parseMaildirFilename reads from this name hold a keyword letter (a-z), told
 * without parsing the name: a scan asks it of every unchanged file of a mailbox.
 */
export function hasKeywordLetters(name: string): boolean {
  const colon = name.lastIndexOf(':');
  if (colon < 0 || !name.startsWith('2,', colon + 1)) return false;
  for (let i = colon + 3; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 44) return false; // ',' starts a flag set nobody reads
    if (c >= 97 && c <= 122) return true;
  }
  return false;
}

/** Dovecot always writes ':2,' in cur/, even with no flags. */
export function formatMaildirFilename(basename: string, flagLetters: string): string {
  return `${basename}:2,${sortUnique(flagLetters)}`;
}

/**
 * `<secs>.M<usecs>P<pid>Q<counter>.<host>`. Dovecot writes
 * `<secs>.M<usecs>P<pid>.<host>` and keeps names unique within a process by
 * bumping the microseconds; we add the maildir spec's Q<deliveries> field
 * instead, which Dovecot's sort order (seconds, then M<usecs>) ignores.
 * Dovecot refuses to start with '/' in the host name and does not escape
 * ':'; we escape both the way the maildir spec says so any host name is safe.
 */
export function generateBasename(nowMs: number, pid: number, host: string, counter: number): string {
  const secs = Math.floor(nowMs / 1000);
  const usecs = Math.min(999_999, Math.max(0, Math.floor((nowMs - secs * 1000) * 1000)));
  return `${secs}.M${usecs}P${pid}Q${counter}.${hostPart(host)}`;
}

/** A host name as Maildir names carry it: `/` and `:` would end the name or start its flags. */
export function hostPart(host: string): string {
  return host.replace(/\//g, '\\057').replace(/:/g, '\\072');
}

export function withSizes(basename: string, size: number, vsize: number): string {
  for (const n of [size, vsize]) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid message size ${n}`);
  }
  return `${basename},S=${size},W=${vsize}`;
}

export function flagsToLetters(flags: readonly string[], keywordIndexes: readonly number[], keep = ''): string {
  const letters: string[] = [];
  for (const f of flags) {
    const letter = FLAG_LETTERS[f as SystemFlag];
    if (letter !== undefined) letters.push(letter);
  }
  // Indexes past 'z' have no letter; Dovecot leaves those keywords out of the name.
  for (const i of keywordIndexes) {
    if (Number.isInteger(i) && i >= 0 && i < 26) letters.push(String.fromCharCode(0x61 + i));
  }
  // Letters with a meaning here come from flags/keywordIndexes only, as in Dovecot, so
  // a cleared flag cannot sneak back in through `keep`; ',' would start a new flag set.
  for (const c of keep) {
    if (!LETTER_FLAGS.has(c) && !/[a-z,]/.test(c)) letters.push(c);
  }
  return sortUnique(letters.join(''));
}

export function lettersToFlags(letters: string): {
  flags: SystemFlag[];
  keywordIndexes: number[];
  unknown: string;
} {
  const flags: SystemFlag[] = [];
  const keywordIndexes: number[] = [];
  let unknown = '';
  for (const c of sortUnique(letters)) {
    const flag = LETTER_FLAGS.get(c);
    if (flag !== undefined) flags.push(flag);
    else if (c >= 'a' && c <= 'z') keywordIndexes.push(c.charCodeAt(0) - 0x61);
    else unknown += c;
  }
  return { flags, keywordIndexes, unknown };
}

/** Conservative: also refuses CR/LF, which would break the line-based dovecot-uidlist. */
export function isValidBasename(s: string): boolean {
  return (
    s.length > 0 &&
    !s.startsWith('.') &&
    !/[/:\0\r\n]/.test(s) &&
    Buffer.byteLength(s, 'utf8') <= 200
  );
}

/** RFC 822 size: each LF not already preceded by CR counts as two bytes. */
export function vsizeOf(body: Buffer): number {
  let extra = 0;
  let at = body.indexOf(0x0a);
  while (at >= 0) {
    if (at === 0 || body[at - 1] !== 0x0d) extra++;
    at = body.indexOf(0x0a, at + 1);
  }
  return body.length + extra;
}
