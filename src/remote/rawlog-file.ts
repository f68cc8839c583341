/**
 * The file `-r FILE` writes the rawlog to, on either end of a connection: created private to
 * the one running (it shows mailbox names and flags), one line written at a time.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { fsError } from '../model/errors.js';

export function openRawlogFile(file: string): { write(line: string): void; close(): void } {
  let fd: number;
  try {
    fd = openSync(file, 'w', 0o600);
  } catch (err) {
    throw fsError(err, `rawlog ${file}`);
  }
  return {
    write: (line) => void writeSync(fd, `${line}\n`),
    close: () => closeSync(fd),
  };
}
