/**
 * What of a mail location can be watched on this machine: a Maildir's tree (and an INBOX= kept
 * apart from it) or an mbox tree and its INBOX file. IMAP accounts and far locations (remote:,
 * tcp:) have nothing here to watch; the replicator polls them on the check interval.
 */
import { parseLocation } from '../config/location.js';

export interface WatchTarget {
  kind: 'maildir' | 'mbox';
  /** The tree: Maildir root, or the directory of mbox files. */
  root: string;
  /** A Maildir INBOX= directory or the mbox INBOX file, when it lies outside the tree. */
  inbox?: string;
}

function inside(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`);
}

/** The target of a location as a user's run opens it (`~` is the user's home), or undefined when it is not on this machine. */
export function watchTargetOf(location: string, home: string | undefined): WatchTarget | undefined {
  if (!/^(maildir|mbox):/i.test(location)) return undefined;
  let loc;
  try {
    loc = parseLocation(location, home);
  } catch {
    // A location the sync itself will refuse with its own message.
    return undefined;
  }
  if (loc.kind === 'imap') return undefined;
  return { kind: loc.kind, root: loc.root, inbox: inside(loc.inbox, loc.root) ? undefined : loc.inbox };
}
