/**
 * Dovecot's `dovecot-keywords`: maps maildir flag letters a..z to IMAP keywords.
 *
 * Reading follows Dovecot's maildir-keywords.c so both sides agree on which
 * letter means what: the name is everything after the first space, the
 * index must be plain digits below 26, a name already seen (compared
 * ASCII-case-insensitively, as Dovecot's hash does) is ignored, and a later
 * line for the same index replaces the earlier one. Dovecot's line reader
 * never returns an unterminated last line, so we ignore it too.
 */
import { dataError } from '../../model/errors.js';

const MAX_KEYWORDS = 26;
const FIRST = 'a'.charCodeAt(0);

export function keywordLetter(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_KEYWORDS) {
    throw new RangeError(`keyword index ${index} has no maildir letter (0..25)`);
  }
  return String.fromCharCode(FIRST + index);
}

export function letterIndex(letter: string): number {
  return /^[a-z]$/.test(letter) ? letter.charCodeAt(0) - FIRST : -1;
}

const asciiLower = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

export function parseKeywordsFile(
  text: string,
  file: string,
): { keywords: (string | undefined)[]; warnings: string[] } {
  const keywords: (string | undefined)[] = [];
  const warnings: string[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  const unterminated = lines.pop()!;

  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    const warn = (msg: string) => warnings.push(`${file}: line ${i + 1}: ${msg}: ${JSON.stringify(line)}`);
    if (line === '') return;
    const sp = line.indexOf(' ');
    if (sp < 0) return warn('expected "<index> <keyword>"');
    const idxText = line.slice(0, sp);
    const name = line.slice(sp + 1);
    if (!/^[0-9]+$/.test(idxText) || Number(idxText) >= MAX_KEYWORDS) return warn('index not in 0..25');
    if (name === '') return warn('empty keyword');
    const key = asciiLower(name);
    if (seen.has(key)) return warn('keyword listed twice, ignored');
    const idx = Number(idxText);
    const old = keywords[idx];
    if (old !== undefined) warn(`replaces keyword ${JSON.stringify(old)} at the same index`);
    seen.add(key);
    keywords[idx] = name;
  });
  if (unterminated !== '') {
    warnings.push(`${file}: line ${lines.length + 1}: no terminating newline, ignored as Dovecot does`);
  }
  return { keywords: Array.from(keywords), warnings };
}

/** Writes `<idx> <name>\n` for each defined slot, in index order, like Dovecot. */
export function formatKeywordsFile(keywords: readonly (string | undefined)[]): string {
  let out = '';
  const seen = new Set<string>();
  keywords.forEach((name, idx) => {
    if (name === undefined) return;
    if (idx >= MAX_KEYWORDS) throw dataError(`cannot write dovecot-keywords: index ${idx} for ${JSON.stringify(name)} exceeds 25`);
    if (name === '' || /[\r\n]/.test(name)) {
      throw dataError(`cannot write dovecot-keywords: invalid keyword ${JSON.stringify(name)}`);
    }
    const key = asciiLower(name);
    if (seen.has(key)) throw dataError(`cannot write dovecot-keywords: keyword ${JSON.stringify(name)} listed twice`);
    seen.add(key);
    out += `${idx} ${name}\n`;
  });
  return out;
}
