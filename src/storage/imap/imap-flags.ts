/** Server flag lists <-> the index's system-flag letters and keyword lists. */
import { FLAG_LETTERS } from '../maildir/filename.js';
import { SYSTEM_FLAGS, type SystemFlag } from '../store.js';

const BY_NAME = new Map<string, SystemFlag>(SYSTEM_FLAGS.map((f) => [f.toLowerCase(), f]));
const BY_LETTER = new Map<string, SystemFlag>((Object.entries(FLAG_LETTERS) as [SystemFlag, string][]).map(([f, l]) => [l, f]));

export function splitServerFlags(flags: readonly string[]): { letters: string; keywords: string[] } {
  const system: SystemFlag[] = [];
  const keywords: string[] = [];
  for (const f of flags) {
    const sys = BY_NAME.get(f.toLowerCase());
    if (sys) system.push(sys);
    else if (!f.startsWith('\\')) keywords.push(f);
  }
  return { letters: toLetters(system), keywords: [...new Set(keywords)].sort() };
}

export function toLetters(flags: readonly SystemFlag[]): string {
  return [...new Set(flags.map((f) => FLAG_LETTERS[f]))].sort().join('');
}

export function fromLetters(letters: string): SystemFlag[] {
  const flags = [...letters].map((c) => BY_LETTER.get(c)).filter((f): f is SystemFlag => f !== undefined);
  return flags.sort((a, b) => SYSTEM_FLAGS.indexOf(a) - SYSTEM_FLAGS.indexOf(b));
}

/** Keywords the mailbox can keep: all when PERMANENTFLAGS has `\*`, else only those listed. */
export function keywordFilter(permanentFlags: Iterable<string> | undefined): (kw: string) => boolean {
  if (!permanentFlags) return () => true;
  const set = new Set([...permanentFlags].map((f) => f.toLowerCase()));
  if (set.has('\\*')) return () => true;
  return (kw) => set.has(kw.toLowerCase());
}
