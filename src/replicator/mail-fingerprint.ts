/**
 * A cheap fingerprint of a mail tree, for the periodic check that catches what the watcher
 * missed: every Maildir `new/` and `cur/` directory with its mtime (a delivery, a flag change and
 * an expunge each change one: they add, rename or remove a file there), every mbox file with its
 * size and mtime, and the set of those paths (a mailbox created or deleted). No message file is
 * read or even listed; a Maildir tree costs one readdir per folder and two stats.
 *
 * A directory changed twice in one clock tick keeps one mtime, so a fingerprint taken between
 * the two changes would hide the second: a fingerprint holding an mtime less than two seconds
 * old is `fresh`, and the next check treats it as changed whatever it finds.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { WatchTarget } from './watch-target.js';

export interface Fingerprint {
  value: string;
  fresh: boolean;
}

const FRESH_MS = 2000;
/** Folder trees are not this deep; a loop made with bind mounts ends here. */
const MAX_DEPTH = 40;

interface Collector {
  lines: string[];
  newest: number;
}

async function statLine(c: Collector, path: string, withSize: boolean): Promise<void> {
  try {
    const st = await lstat(path, { bigint: true });
    c.lines.push(`${path}\t${st.mtimeNs}${withSize ? `\t${st.size}` : ''}`);
    c.newest = Math.max(c.newest, Number(st.mtimeMs));
  } catch (err) {
    c.lines.push(`${path}\t${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

async function entries(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
}

async function walkMaildir(c: Collector, dir: string, depth: number): Promise<void> {
  const list = await entries(dir);
  if (list === undefined) {
    c.lines.push(`${dir}\tmissing`);
    return;
  }
  for (const e of list) {
    if (!e.isDirectory()) continue;
    const path = join(dir, e.name);
    if (e.name === 'cur' || e.name === 'new') await statLine(c, path, false);
    else if (e.name !== 'tmp' && depth < MAX_DEPTH) await walkMaildir(c, path, depth + 1);
  }
}

async function walkMbox(c: Collector, dir: string, depth: number): Promise<void> {
  const list = await entries(dir);
  if (list === undefined) {
    c.lines.push(`${dir}\tmissing`);
    return;
  }
  for (const e of list) {
    // Dot entries are Dovecot's and mailferry's own (.subscriptions, .imap), locks are transient.
    if (e.name.startsWith('.') || e.name.endsWith('.lock')) continue;
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (depth < MAX_DEPTH) await walkMbox(c, path, depth + 1);
    } else if (e.isFile()) await statLine(c, path, true);
  }
}

export async function fingerprint(targets: readonly WatchTarget[], now: number = Date.now()): Promise<Fingerprint> {
  const c: Collector = { lines: [], newest: 0 };
  for (const t of targets) {
    if (t.kind === 'maildir') {
      await walkMaildir(c, t.root, 0);
      if (t.inbox !== undefined) await walkMaildir(c, t.inbox, MAX_DEPTH);
    } else {
      await walkMbox(c, t.root, 0);
      if (t.inbox !== undefined) await statLine(c, t.inbox, true);
    }
  }
  c.lines.sort();
  return { value: createHash('sha256').update(c.lines.join('\n')).digest('hex'), fresh: now - c.newest < FRESH_MS };
}
