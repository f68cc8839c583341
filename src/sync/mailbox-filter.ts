/**
 * Which mailboxes a run touches: `-m NAME`, `-g GUID`, and `-x MASK` excludes, where a mask
 * is an IMAP LIST pattern (`*` matches anything, `%` anything but the separator) or a
 * special-use attribute such as `\Trash`. Matching ignores case for INBOX only, as IMAP does.
 */
import { usageError } from '../model/errors.js';
import { formatMailboxName, parseMailboxName } from '../model/mailbox-name.js';
import type { MailboxStatus } from '../storage/store.js';

export interface MailboxFilterSpec {
  mailbox?: string;
  guid?: string;
  excludes?: readonly string[];
}

function maskToRegExp(mask: string, separator: string): RegExp {
  const sep = separator.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  let re = '';
  for (const c of mask) {
    if (c === '*') re += '.*';
    else if (c === '%') re += `[^${sep}]*`;
    else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'u');
}

export function mailboxFilter(spec: MailboxFilterSpec, separator: string): (m: MailboxStatus) => boolean {
  if (spec.guid !== undefined && !/^[0-9a-f]{32}$/.test(spec.guid)) {
    throw usageError(`invalid -g '${spec.guid}': a mailbox GUID is 32 hex digits`);
  }
  const only = spec.mailbox === undefined ? undefined : formatMailboxName(parseMailboxName(spec.mailbox, separator), separator);
  const specialUse = (spec.excludes ?? []).filter((x) => x.startsWith('\\')).map((x) => x.toLowerCase());
  const patterns = (spec.excludes ?? []).filter((x) => !x.startsWith('\\')).map((x) => {
    if (x === '') throw usageError('empty -x mask');
    return maskToRegExp(x, separator);
  });
  return (m) => {
    const shown = formatMailboxName(m.name, separator);
    if (only !== undefined && shown !== only) return false;
    if (spec.guid !== undefined && m.guid !== spec.guid) return false;
    if (m.specialUse.some((u) => specialUse.includes(u.toLowerCase()))) return false;
    return !patterns.some((p) => p.test(shown));
  };
}
