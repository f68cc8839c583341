/**
 * Entries of an mbox tree that belong to Dovecot or mailferry rather than to a mailbox or to
 * the user: Dovecot's index directory, the subscriptions file and its temp files, dotlocks,
 * and the temp files of a rewrite. Listing skips them; a destination holding only these is
 * not taken for someone else's directory.
 */

/** The temp file of a rewrite of `name` by process `pid`. */
export function rewriteTempName(name: string, pid: number): string {
  return `.${name}.${pid}.mailferry-tmp`;
}

export function isOwnEntry(name: string): boolean {
  return (
    name === '.imap' ||
    name.startsWith('.subscriptions') ||
    name.endsWith('.lock') ||
    (name.startsWith('.') && name.endsWith('.mailferry-tmp'))
  );
}
