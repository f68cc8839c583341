/**
 * Files that belong to the site rather than to a user: the shared secret, a client's TLS key,
 * a CA file. A run over users started as root reads a user's mail with that user's effective
 * uid, and the secret is root's alone (a user who could read it could ask the server for
 * anyone's mail), so such a file is read with the real (root) identity and the effective one
 * restored at once; nothing else runs in between.
 */
import { readFileSync } from 'node:fs';
import { fsError, MailferryError } from '../model/errors.js';

export function readSiteFile(path: string, what: string): Buffer {
  const borrowed = typeof process.getuid === 'function' && process.getuid() === 0 && process.geteuid!() !== 0;
  const euid = process.geteuid?.();
  const egid = process.getegid?.();
  try {
    if (borrowed) {
      process.seteuid!(0);
      process.setegid!(0);
    }
    return readFileSync(path);
  } catch (err) {
    const e = fsError(err, `${what} ${path}`);
    // A file the configuration names that is not there is the configuration's mistake.
    throw e.kind === 'notfound' ? new MailferryError('config', e.message) : e;
  } finally {
    if (borrowed) {
      process.setegid!(egid!);
      process.seteuid!(euid!);
    }
  }
}

/** Bytes a shared secret must have at least. */
export const MIN_SECRET_BYTES = 16;

/** The secret is the first line of the file (a trailing CR dropped), as password files are read. */
export function readSecretFile(path: string, what = 'secret file'): Buffer {
  const raw = readSiteFile(path, what);
  let end = raw.indexOf(0x0a);
  if (end < 0) end = raw.length;
  if (end > 0 && raw[end - 1] === 0x0d) end--;
  const secret = raw.subarray(0, end);
  if (secret.length < MIN_SECRET_BYTES) {
    throw new MailferryError('config', `${what} ${path}: the secret on its first line is ${secret.length === 0 ? 'empty' : `only ${secret.length} bytes`}; it needs at least ${MIN_SECRET_BYTES} (make one with: openssl rand -hex 32)`);
  }
  return Buffer.from(secret);
}
