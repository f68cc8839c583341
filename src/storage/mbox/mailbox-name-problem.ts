/**
 * Names an mbox tree cannot hold. Mailbox `A/B` is the file ROOT/A/B, so every level must be
 * a file name the listing would read back as that level, and a mailbox cannot have children:
 * a file is not a directory. Asked before anything is created, so a copy skips such a mailbox
 * instead of failing halfway with files that hold only a placeholder.
 */
import { isInbox } from '../../model/mailbox-name.js';
import { encodeMutf7 } from '../../model/mutf7.js';
import type { MailboxName } from '../store.js';

/** Longest file name Linux file systems take (NAME_MAX). */
const NAME_MAX_BYTES = 255;

/** Why one level of a name cannot be a file or directory name in an mbox tree, or undefined. */
export function levelProblem(level: string): string | undefined {
  if (level === '') return 'it has an empty level';
  if (level === '.' || level === '..') return `its level '${level}' names a directory itself, not a file`;
  if (level.includes('/')) return `its level '${level}' contains '/', the separator of file paths`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(level)) return `its level ${JSON.stringify(level)} contains a control character`;
  if (level.startsWith('.')) {
    return `its level '${level}' starts with '.', which an mbox tree keeps for Dovecot's and mailferry's own files (.imap, .subscriptions, temp files)`;
  }
  if (level.endsWith('.lock')) return `its level '${level}' ends in '.lock', the name of the dotlock other programs take on a mailbox`;
  if (Buffer.byteLength(encodeMutf7(level)) > NAME_MAX_BYTES) return `its level '${level.slice(0, 40)}...' is longer than a file name can be`;
  return undefined;
}

/**
 * Why mailbox `name` (canonical) with this shape cannot be held in an mbox tree, as a sentence
 * that says what to do; undefined when it can.
 */
export function mboxNameProblem(name: MailboxName, shown: string, shape: { hasChildren: boolean; messages: number }): string | undefined {
  const remedy = `leave it out with -x '${shown}', or copy into a Maildir destination`;
  if (isInbox(name)) return undefined;
  for (const level of name) {
    const problem = levelProblem(level);
    if (problem) return `mailbox '${shown}' cannot be stored in an mbox tree: ${problem}; ${remedy}`;
  }
  if (shape.hasChildren) {
    const holding = shape.messages > 0 ? `holds ${shape.messages} message${shape.messages === 1 ? '' : 's'} and ` : '';
    return (
      `mailbox '${shown}' ${holding}has child mailboxes, but in an mbox tree a mailbox is a file and cannot have children; ` +
      `${remedy} (its children are copied either way)`
    );
  }
  return undefined;
}
