/**
 * A quick look at an mbox's UIDVALIDITY without scanning it, to recognize a mailbox file that
 * another program renamed.
 */
import { closeSync, readSync } from 'node:fs';
import { openFileSync } from '../safe-fs.js';

/** The UIDVALIDITY in the first header of an mbox (X-IMAPbase, or X-IMAP of the pseudo message). */
export function peekUidValidity(path: string): number | undefined {
  let text: string;
  try {
    const fd = openFileSync(path);
    try {
      const buf = Buffer.alloc(64 * 1024);
      text = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const end = text.search(/\r?\n\r?\n/);
  const header = end < 0 ? text : text.slice(0, end);
  const m = /^X-IMAP(?:base)?:[ \t]*(\d+)[ \t]+\d+/im.exec(header);
  return m ? Number(m[1]) : undefined;
}
