/**
 * Contract names (UTF-8 hierarchy parts) <-> server paths in the personal namespace: the
 * namespace prefix (`INBOX.` on Courier-style servers) and the server's delimiter are added
 * here; modified UTF-7 is imapflow's business (it encodes unless UTF8=ACCEPT is enabled).
 *
 * A part that contains the server's delimiter cannot be spelled on that server. It is refused
 * with a data error naming the folder rather than escaped: an escape would be a mailferry-only
 * convention that every other client of the account would show as a strange folder name.
 */
import { dataError } from '../../model/errors.js';
import { canonicalName, isInbox, type MailboxName } from '../../model/mailbox-name.js';

export class ImapNames {
  constructor(
    readonly prefix: string,
    readonly delimiter: string,
    private readonly account: string,
  ) {}

  toPath(name: MailboxName): string {
    const c = canonicalName(name);
    if (isInbox(c)) return 'INBOX';
    for (const part of c) {
      if (part === '') throw dataError(`${this.account}: mailbox '${c.join(this.delimiter || '/')}' has an empty name part`);
      if (this.delimiter && part.includes(this.delimiter)) {
        throw dataError(`${this.account}: mailbox name part '${part}' contains the server's hierarchy delimiter '${this.delimiter}'; rename the folder on the other side`);
      }
    }
    // A top-level INBOX child is spelled under INBOX, never under the prefix.
    if (c[0] === 'INBOX') return c.join(this.delimiter);
    return this.prefix + c.join(this.delimiter);
  }

  /** Undefined for paths outside the personal namespace (other users', shared). */
  fromPath(path: string): string[] | undefined {
    if (path.toUpperCase() === 'INBOX') return ['INBOX'];
    let rest = path;
    if (this.prefix !== '') {
      if (path.startsWith(this.prefix)) rest = path.slice(this.prefix.length);
      else if (!path.toUpperCase().startsWith('INBOX' + this.delimiter)) return undefined;
    }
    if (rest === '') return undefined;
    return canonicalName(this.delimiter ? rest.split(this.delimiter) : [rest]);
  }
}
