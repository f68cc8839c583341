/**
 * Mail location strings, written the way Dovecot writes `mail_location`:
 * `maildir:~/Maildir[:LAYOUT=fs][:INBOX=path][:INDEX=path]`, `mbox:~/mail[:INBOX=/var/mail/u]`,
 * or an IMAP URL (`imap://user@host`, `imaps://...`, see imap-location.ts).
 */
import { realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { usageError } from '../model/errors.js';
import { parseImapLocation, type ImapLocation } from './imap-location.js';

export interface MaildirLocation {
  kind: 'maildir';
  /** The string as given, for messages. */
  raw: string;
  root: string;
  layout: 'maildir++' | 'fs';
  /** Directory of INBOX; the root itself unless INBOX= says otherwise. */
  inbox: string;
  /** Directory holding mailferry's change index; the root unless INDEX= says otherwise. */
  indexDir: string;
}

export interface MboxLocation {
  kind: 'mbox';
  raw: string;
  /** Directory holding the folder tree: one mbox file per mailbox, subfolders as directories. */
  root: string;
  /** The INBOX mbox file: ROOT/inbox unless INBOX= names another file (a spool). */
  inbox: string;
  /**
   * Directory holding mailferry's change index. Dovecot lists every entry under an mbox root as
   * a mailbox, hidden ones included, so the default lies outside it, in the user's state
   * directory ($XDG_STATE_HOME/mailferry/mbox/<root>, as for IMAP accounts).
   */
  indexDir: string;
}

export type MailLocation = MaildirLocation | MboxLocation | ImapLocation;

function expandHome(path: string, home: string): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return home + path.slice(1);
  return path;
}

export function parseLocation(raw: string, home: string = process.env.HOME ?? homedir()): MailLocation {
  if (/^imaps?:\/\//i.test(raw)) return parseImapLocation(raw, home);
  const colon = raw.indexOf(':');
  if (colon <= 0) {
    throw usageError(`invalid mail location '${raw}': expected TYPE:PATH, e.g. maildir:~/Maildir`);
  }
  const type = raw.slice(0, colon).toLowerCase();
  const [pathPart = '', ...params] = raw.slice(colon + 1).split(':');
  if (type !== 'maildir' && type !== 'mbox') {
    throw usageError(`unsupported mail location type '${type}' in '${raw}' (supported: maildir:, mbox:, imap://, imaps://)`);
  }
  if (pathPart === '') throw usageError(`invalid mail location '${raw}': the path is empty`);
  const root = resolve(expandHome(pathPart, home));
  const location: MaildirLocation | MboxLocation =
    type === 'mbox'
      ? { kind: 'mbox', raw, root, inbox: join(root, 'inbox'), indexDir: join(process.env.XDG_STATE_HOME || join(home, '.local', 'state'), 'mailferry', 'mbox', encodeURIComponent(root)) }
      : { kind: 'maildir', raw, root, layout: 'maildir++', inbox: root, indexDir: root };
  for (const param of params) {
    const eq = param.indexOf('=');
    const key = (eq < 0 ? param : param.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? '' : param.slice(eq + 1);
    switch (key) {
      case 'LAYOUT':
        // An mbox tree has one layout; Dovecot accepts and ignores the parameter there.
        if (location.kind === 'mbox') break;
        if (value === 'fs') location.layout = 'fs';
        else if (value === 'maildir++' || value === '') location.layout = 'maildir++';
        else throw usageError(`invalid LAYOUT '${value}' in mail location '${raw}' (expected fs or maildir++)`);
        break;
      case 'INBOX':
        if (value === '') throw usageError(`empty INBOX= in mail location '${raw}'`);
        location.inbox = resolve(expandHome(value, home));
        break;
      case 'INDEX':
        if (value === '') throw usageError(`empty INDEX= in mail location '${raw}'`);
        if (value !== 'MEMORY') location.indexDir = resolve(expandHome(value, home));
        break;
      case 'CONTROL':
      case 'VOLATILEDIR':
      case 'UTF8':
      case 'DIRNAME':
        // Dovecot-only tuning parameters; they do not change where mail lives.
        break;
      default:
        throw usageError(`unknown parameter '${key}' in mail location '${raw}'`);
    }
  }
  return location;
}

/** A string naming the account an IMAP location reaches, to refuse syncing an account with itself. */
export function locationIdentity(loc: MailLocation): string[] {
  if (loc.kind === 'imap') return [`imap:${loc.user.toLowerCase()}@${loc.host.toLowerCase()}:${loc.port}`];
  return [loc.root, loc.inbox];
}

/**
 * The real path `path` has or will have: the realpath of its longest existing prefix with the
 * rest appended, so a destination not created yet is still seen through the links above it.
 */
export function realPathOf(path: string): string {
  const rest: string[] = [];
  let at = resolve(path);
  for (;;) {
    try {
      return join(realpathSync(at), ...rest.reverse());
    } catch {
      const parent = dirname(at);
      if (parent === at) return join(at, ...rest.reverse());
      rest.push(basename(at));
      at = parent;
    }
  }
}

/**
 * Where a location writes, by real path: `trees` are directories it owns with everything below
 * them (a Maildir or mbox root, a Maildir INBOX=), `spots` single places it writes (an index
 * directory, an mbox INBOX= spool, an IMAP state directory) without owning what lies beneath.
 */
export interface LocationPlaces {
  trees: string[];
  spots: string[];
}

export function locationPlaces(loc: MailLocation): LocationPlaces {
  if (loc.kind === 'imap') return { trees: [], spots: [realPathOf(loc.stateDir)] };
  if (loc.kind === 'mbox') return { trees: [realPathOf(loc.root)], spots: [realPathOf(loc.inbox), realPathOf(loc.indexDir)] };
  return { trees: [realPathOf(loc.root), realPathOf(loc.inbox)], spots: [realPathOf(loc.indexDir)] };
}

function within(path: string, tree: string): boolean {
  const rel = relative(tree, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`));
}

/** How two locations overlap on disk, as [a's path, b's path, relation], or undefined when they do not. */
export function locationOverlap(a: MailLocation, b: MailLocation): [string, string, 'same' | 'inside' | 'contains'] | undefined {
  if (a.kind === 'imap' && b.kind === 'imap') {
    const [ia, ib] = [locationIdentity(a)[0]!, locationIdentity(b)[0]!];
    if (ia === ib) return [ia, ib, 'same'];
  }
  const pa = locationPlaces(a);
  const pb = locationPlaces(b);
  for (const x of [...pa.trees, ...pa.spots]) {
    for (const t of pb.trees) if (within(x, t)) return [x, t, x === t ? 'same' : 'inside'];
  }
  for (const y of [...pb.trees, ...pb.spots]) {
    for (const t of pa.trees) if (within(y, t)) return [t, y, y === t ? 'same' : 'contains'];
  }
  for (const x of pa.spots) if (pb.spots.includes(x)) return [x, x, 'same'];
  return undefined;
}

/** Directory where `-l` takes its run lock for this location (its index or state directory). */
export function lockDirOf(loc: MailLocation): string {
  return loc.kind === 'imap' ? loc.stateDir : loc.indexDir;
}

/** Parses a location that must be a Maildir (tools and tests that open a MaildirStore directly). */
export function parseMaildirLocation(raw: string): MaildirLocation {
  const loc = parseLocation(raw);
  if (loc.kind !== 'maildir') throw usageError(`'${raw}' is not a maildir: location`);
  return loc;
}
