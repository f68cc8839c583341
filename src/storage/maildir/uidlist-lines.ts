/**
 * What a writer needs to know of a dovecot-uidlist without parsing it whole: how many entry
 * lines it holds, and which base names they name. Both read the raw bytes, so a 100k-line
 * uidlist costs a few milliseconds instead of a full parse.
 */
import { join } from 'node:path';
import { readFileIfExists } from '../safe-fs.js';
import { UIDLIST_FILENAME } from './mailbox-files.js';

/** Entry lines of the uidlist (the header and an unterminated last line not counted); 0 when there is none. */
export function uidlistLineCount(dir: string): number {
  const bytes = readFileIfExists(join(dir, UIDLIST_FILENAME));
  if (bytes === undefined) return 0;
  let lines = 0;
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) lines++;
  return Math.max(0, lines - 1);
}

/**
 * Every base name the uidlist names, lines whose files are gone included. Lines that cannot
 * be read are left out: the scan decides what they mean.
 */
export function uidlistBasenames(dir: string): Set<string> {
  const names = new Set<string>();
  const bytes = readFileIfExists(join(dir, UIDLIST_FILENAME));
  if (bytes === undefined) return names;
  const lines = bytes.toString('utf8').split('\n');
  lines.pop(); // the unterminated tail, or '' after the last newline
  const v3 = lines[0]?.startsWith('3 ') ?? false;
  for (let i = 1; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    // Version 3: `<uid> [<key><value> ...] :<name>`; values hold no spaces, so the first " :"
    // starts the name. Version 1: `<uid> <name>`.
    const at = v3 ? line.indexOf(' :') : line.indexOf(' ');
    if (at < 0) continue;
    const rest = v3 ? line.slice(at + 2) : line.slice(at + 1).trimStart();
    const colon = rest.indexOf(':');
    const name = colon < 0 ? rest : rest.slice(0, colon);
    if (name !== '') names.add(name);
  }
  return names;
}
