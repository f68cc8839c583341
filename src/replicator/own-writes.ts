/**
 * Whether the message files the watcher saw change while a user's sync ran stand the same on
 * both sides of the pair once it ended: then those changes were the sync's own writes into the
 * watched Maildirs (or changes it carried over), and queueing the user again would only run a
 * sync that finds nothing to do. Anything else, or anything this cannot judge, is a change to
 * sync.
 *
 * Why no change is lost by trusting it: a change the sync did not see was made after the sync's
 * last look at that folder, so its event names the message it touched, and the sides are read
 * here after that event came. The sync left every message it looked at equal on both sides; a
 * later change to one side makes that message differ (a delivery is on one side only, an
 * expunge leaves it on the other, new flags differ from the other side's) unless it made the
 * message what the other side already holds, and then there is nothing to copy. So a message
 * equal on both sides needs no sync, whoever touched it. A message on neither side is not taken
 * for agreed (its counterpart may go by another name): an expunge the sync carried over is
 * synced once more, as before.
 *
 * Judged only for a Maildir source and a Maildir replica each under its own root: a message is
 * its base name (the part before ':', the GUID both sides share), its folder the same path under
 * either root, its flags the system flag letters and the keywords the letters stand for in that
 * folder's dovecot-keywords. An event without a file name, outside both roots, or a base name held
 * twice on one side cannot be judged. Reads only names (two readdirs a folder) and the small
 * keywords file, never a message; refuses links and special files as the stores do.
 */
import { lstat, readdir } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { readFileIfExists } from '../storage/safe-fs.js';
import { parseMaildirFilename } from '../storage/maildir/filename.js';
import { letterIndex, parseKeywordsFile } from '../storage/maildir/keywords-file.js';
import type { WatchTarget } from './watch-target.js';

/** One event of a watched `cur/` or `new/` directory: the directory, and the file it named. */
export interface MessageChange {
  dir: string;
  name: string | undefined;
}

const KEYWORDS_FILE = 'dovecot-keywords';

/** A folder's messages by base name: their flags as comparable text, or null when held twice. */
type Listing = Map<string, string | null>;

async function listFolder(folder: string): Promise<Listing | undefined> {
  const out: Listing = new Map();
  let keywords: (string | undefined)[] | undefined;
  const keywordOf = (letter: string): string | undefined => {
    if (keywords === undefined) {
      try {
        const text = readFileIfExists(join(folder, KEYWORDS_FILE));
        keywords = text === undefined ? [] : parseKeywordsFile(text.toString('utf8'), KEYWORDS_FILE).keywords;
      } catch {
        keywords = [];
      }
    }
    return keywords[letterIndex(letter)];
  };
  for (const sub of ['new', 'cur']) {
    const dir = join(folder, sub);
    let names: string[];
    try {
      const st = await lstat(dir);
      if (!st.isDirectory()) return undefined;
      names = await readdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      return undefined;
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const f = parseMaildirFilename(name);
      let flags = '';
      const words: string[] = [];
      for (const letter of f.flagLetters) {
        if (letter >= 'a' && letter <= 'z') {
          const word = keywordOf(letter);
          // A letter no keyword stands for cannot be compared: it differs from everything.
          words.push(word === undefined ? `\u0000${folder}\u0000${letter}` : word.toLowerCase());
        } else flags += letter;
      }
      const text = `${flags} ${words.sort().join(' ')}`;
      out.set(f.basename, out.has(f.basename) ? null : text);
    }
  }
  return out;
}

/** The root a watched folder lies under (the deepest, should one lie inside the other), or undefined. */
function rootOf(roots: readonly string[], folder: string): number | undefined {
  let best: number | undefined;
  roots.forEach((root, i) => {
    const inside = folder === root || folder.startsWith(root.endsWith('/') ? root : `${root}/`);
    if (inside && (best === undefined || root.length > roots[best]!.length)) best = i;
  });
  return best;
}

/** True when every message these changes name is held alike on both sides (or on neither) now. */
export async function pairAgreesOn(targets: readonly WatchTarget[], changes: readonly MessageChange[]): Promise<boolean> {
  if (targets.length !== 2 || targets.some((t) => t.kind !== 'maildir' || t.inbox !== undefined)) return false;
  const roots = targets.map((t) => t.root.replace(/\/+$/, '') || '/');
  // Folder (relative to its root) -> base names to compare.
  const named = new Map<string, Set<string>>();
  for (const c of changes) {
    const sub = basename(c.dir);
    if (c.name === undefined || c.name === '' || c.name.includes('/') || (sub !== 'cur' && sub !== 'new')) return false;
    const folder = dirname(c.dir);
    const side = rootOf(roots, folder);
    if (side === undefined) return false;
    const rel = relative(roots[side]!, folder);
    if (rel.startsWith('..')) return false;
    const names = named.get(rel) ?? new Set<string>();
    names.add(parseMaildirFilename(c.name).basename);
    named.set(rel, names);
  }
  for (const [rel, names] of named) {
    const [a, b] = await Promise.all(roots.map((root) => listFolder(join(root, rel))));
    if (a === undefined || b === undefined) return false;
    for (const name of names) {
      const [x, y] = [a.get(name), b.get(name)];
      // On neither side proves nothing: the other side may hold that message under another name
      // (a copy renumbered, another layout), and an expunge of it here would then be lost.
      if (x === undefined || x === null || y === null || x !== y) return false;
    }
  }
  return true;
}
