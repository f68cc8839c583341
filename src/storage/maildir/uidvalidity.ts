/**
 * UIDVALIDITY allocation through `dovecot-uidvalidity` at the mail root, shared with Dovecot
 * so that neither hands out a value the other already used for a mailbox of this root.
 * The file holds the last value given out, in hex.
 */
import { renameSync } from 'node:fs';
import { readFileIfExists, writeNewFileSync } from '../safe-fs.js';
import { join } from 'node:path';
import { fsError } from '../../model/errors.js';

export const UIDVALIDITY_FILENAME = 'dovecot-uidvalidity';

export function nextUidValidity(root: string): number {
  const path = join(root, UIDVALIDITY_FILENAME);
  let last = 0;
  try {
    const parsed = Number.parseInt(readFileIfExists(path)?.toString('utf8').trim() ?? '', 16);
    if (Number.isFinite(parsed)) last = parsed;
  } catch {
    // Missing or unreadable: start from the clock, as Dovecot does.
  }
  const now = Math.floor(Date.now() / 1000);
  let next = Math.max(last + 1, now);
  if (next > 0xffffffff || next <= 0) next = 1;
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeNewFileSync(tmp, next.toString(16).padStart(8, '0'), 0o644);
    renameSync(tmp, path);
  } catch (err) {
    throw fsError(err, path);
  }
  return next;
}
