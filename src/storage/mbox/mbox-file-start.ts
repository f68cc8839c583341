/**
 * Whether a file is an mbox by its first bytes. An mbox root is any directory the user names,
 * and Dovecot lists every file in it as a mailbox; mailferry takes for a mailbox only a file
 * that is empty or starts with a `From ` line, so that `notes.txt` or a key file is never
 * rewritten, emptied or deleted as one.
 */
import { closeSync, readSync } from 'node:fs';
import { openFileSync } from '../safe-fs.js';

const PEEK_BYTES = 4096;
const FROM = Buffer.from('From ');

/** True for an empty file or one whose first line (after blank lines) starts with `From `; refuses links and FIFOs. */
export function startsAsMbox(path: string): boolean {
  const fd = openFileSync(path);
  try {
    const buf = Buffer.alloc(PEEK_BYTES);
    const n = readSync(fd, buf, 0, buf.length, 0);
    let i = 0;
    // The scanner skips leading blank lines too.
    while (i < n && (buf[i] === 10 || buf[i] === 13)) i++;
    if (i === n) return n < PEEK_BYTES;
    return buf.subarray(i, Math.min(n, i + FROM.length)).equals(FROM);
  } finally {
    closeSync(fd);
  }
}
