/**
 * Which users a run is for: `-u NAME`, `-u 'MASK'` (`*` and `?`), `-A` (every user of the
 * userdb) or `-F FILE` (one user per line; `user<TAB>destination` gives that user its own
 * destination). Users come one at a time, as the userdb iterates them.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { MailferryError } from '../model/errors.js';
import { isUnusableUser, type UserDb, type UserRecord } from '../config/userdb/userdb.js';

export type UserSelection =
  | { kind: 'names'; masks: string[] }
  | { kind: 'all' }
  | { kind: 'file'; file: string };

/** A user to run, or a name that could not be run (unknown, a bad line) with its error. */
export type SelectedUser =
  | { record: UserRecord; destination?: string }
  | { user: string; error: MailferryError };

export function isMask(name: string): boolean {
  return /[*?]/.test(name);
}

/** `*` any run of characters, `?` one character; everything else literal, case-sensitive. */
export function maskMatcher(mask: string): (name: string) => boolean {
  const re = new RegExp(`^${[...mask].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('')}$`, 's');
  return (name) => re.test(name);
}

/**
 * One user's lookup: an entry that is there but unusable (two SQL rows, a bad uid) fails that
 * user alone; a userdb that cannot be read at all still ends the run.
 */
async function lookupOne(user: string, userdb: UserDb): Promise<SelectedUser> {
  try {
    const record = await userdb.lookup(user);
    return record ? { record } : { user, error: unknownUser(user, userdb) };
  } catch (err) {
    if (err instanceof MailferryError && err.kind === 'data') return { user, error: err };
    throw err;
  }
}

function unknownUser(user: string, userdb: UserDb): MailferryError {
  return new MailferryError('nouser', `user ${user}: no such user in ${userdb.description}`);
}

/** A userdb that knows every name: for -F lists without any userdb configured. */
export function namesOnlyUserDb(): UserDb {
  return {
    description: 'the -F list (no userdb configured)',
    lookup: async (user) => ({ user, extra: {} }),
    iterate: () => {
      throw new MailferryError('config', 'no userdb is configured: -A needs one (set userdb in the configuration or -o userdb=passwd-file:FILE)');
    },
    close: async () => {},
  };
}

async function* fromFile(file: string, userdb: UserDb): AsyncGenerator<SelectedUser> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  try {
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MailferryError(code === 'EACCES' ? 'permission' : 'usage', `-F ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
  }
  // Names already run: a list names each user once; a second line would run it twice.
  const seen = new Set<string>();
  let n = 0;
  for await (const raw of createInterface({ input: stream, crlfDelay: Infinity })) {
    n++;
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const tab = line.indexOf('\t');
    const user = (tab < 0 ? line : line.slice(0, tab)).trim();
    const destination = tab < 0 ? undefined : line.slice(tab + 1).trim() || undefined;
    if (user === '') {
      yield { user: `(line ${n})`, error: new MailferryError('usage', `-F ${file} line ${n}: no user name before the tab`) };
      continue;
    }
    if (seen.has(user)) {
      process.stderr.write(`mailferry: warning: -F ${file} line ${n}: user ${user} is listed again; run once\n`);
      continue;
    }
    seen.add(user);
    const selected = await lookupOne(user, userdb);
    yield 'record' in selected ? { ...selected, destination } : selected;
  }
}

export async function* selectUsers(selection: UserSelection, userdb: UserDb): AsyncGenerator<SelectedUser> {
  if (selection.kind === 'file') {
    yield* fromFile(selection.file, userdb);
    return;
  }
  if (selection.kind === 'all') {
    yield* (async function* () {
      for await (const entry of userdb.iterate()) yield isUnusableUser(entry) ? entry : { record: entry };
    })();
    return;
  }
  const plain = selection.masks.filter((m) => !isMask(m));
  const masks = selection.masks.filter(isMask).map((m) => ({ mask: m, test: maskMatcher(m), hits: 0 }));
  for (const user of plain) yield await lookupOne(user, userdb);
  if (masks.length === 0) return;
  for await (const entry of userdb.iterate()) {
    if (plain.includes(entry.user)) continue;
    const hit = masks.find((m) => m.test(entry.user));
    if (!hit) continue;
    hit.hits++;
    yield isUnusableUser(entry) ? entry : { record: entry };
  }
  for (const m of masks) {
    if (m.hits === 0) yield { user: m.mask, error: new MailferryError('nouser', `no user of ${userdb.description} matches '${m.mask}'`) };
  }
}
