/**
 * Reading a Maildir++ tree straight from the file system, without mailferry's store, so the
 * checks and the edits of the benchmark do not depend on the code they measure.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Mailbox directories by their on-disk name ('INBOX' for the root, else the dot name without its dot). */
export function mailboxDirs(root: string): Map<string, string> {
  const out = new Map<string, string>([['INBOX', root]]);
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (e.isDirectory() && e.name.startsWith('.') && e.name !== '.' && e.name !== '..' && existsSync(join(root, e.name, 'cur'))) {
      out.set(e.name.slice(1), join(root, e.name));
    }
  }
  return out;
}

/** UID -> base name, from dovecot-uidlist (`UID [ext...] :basename` lines after the header). */
export function readUidlist(dir: string): Map<number, string> {
  const map = new Map<number, string>();
  const lines = readFileSync(join(dir, 'dovecot-uidlist'), 'utf8').split('\n');
  for (const line of lines.slice(1)) {
    const m = /^(\d+)(?: [^:]*)?:(.+)$/.exec(line);
    if (m) map.set(Number(m[1]), m[2]!);
  }
  return map;
}

/** Keyword letter ('a'...) -> name, from dovecot-keywords (`N name` lines). */
export function readKeywordMap(dir: string): Map<string, string> {
  const map = new Map<string, string>();
  let text = '';
  try { text = readFileSync(join(dir, 'dovecot-keywords'), 'utf8'); } catch { return map; }
  for (const line of text.split('\n')) {
    const m = /^(\d+) (.+)$/.exec(line);
    if (m && Number(m[1]) < 26) map.set(String.fromCharCode(97 + Number(m[1])), m[2]!);
  }
  return map;
}

export interface MessageFile { sub: 'cur' | 'new'; file: string; basename: string; letters: string }

export function listMessages(dir: string): MessageFile[] {
  const out: MessageFile[] = [];
  for (const sub of ['cur', 'new'] as const) {
    for (const file of readdirSync(join(dir, sub))) {
      const i = file.indexOf(':2,');
      out.push({ sub, file, basename: i < 0 ? file : file.slice(0, i), letters: i < 0 ? '' : file.slice(i + 3) });
    }
  }
  return out;
}

/** The flags and keywords of one message as names: uppercase letters stay, keyword letters map to names. */
export function flagNames(letters: string, keywords: Map<string, string>): string[] {
  return [...letters].map((c) => (c >= 'a' && c <= 'z' ? (keywords.get(c) ?? `?${c}`) : c));
}

/**
 * Per mailbox: how many messages, and how many carry each flag or keyword. Two Maildirs with
 * equal tallies hold the same number of messages with the same flag distribution; the change
 * sets of case 3 are checked against the tallies they must produce.
 */
export type Tally = Record<string, Record<string, number>>;

export function tally(root: string): Tally {
  const out: Tally = {};
  for (const [name, dir] of [...mailboxDirs(root)].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const kw = readKeywordMap(dir);
    const t: Record<string, number> = { messages: 0 };
    for (const m of listMessages(dir)) {
      t.messages!++;
      for (const f of flagNames(m.letters, kw)) t[f] = (t[f] ?? 0) + 1;
    }
    out[name] = t;
  }
  return out;
}

export function addToTally(t: Tally, mailbox: string, key: string, n: number): void {
  const m = (t[mailbox] ??= { messages: 0 });
  m[key] = (m[key] ?? 0) + n;
  if (m[key] === 0 && key !== 'messages') delete m[key];
}

/** Stable text of a tally, for comparing and for error messages. */
export function tallyText(t: Tally): string {
  return JSON.stringify(Object.keys(t).sort().map((k) => [k, Object.entries(t[k]!).filter(([, v]) => v !== 0).sort()]));
}
