/**
 * The one way stores open and inspect files inside their tree: never through a symbolic link,
 * never blocking on a FIFO or a device, and only regular files or real directories.
 *
 * Why: a mail tree is written by other programs and sometimes by other people. A message file
 * that is a link to /etc/shadow, a `cur` that is a link to /etc, a folder that is a link to a
 * directory outside the tree, or a FIFO left in `cur/` must be refused, not read, written into
 * or waited on. O_NOFOLLOW covers the last component of a path; stores check every directory
 * they descend into with {@link entryKind} (lstat), so no earlier component is a link either.
 * O_NONBLOCK makes opening a FIFO return at once (on a regular file it changes nothing), and the
 * fstat that follows refuses it.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dataError, fsError } from '../model/errors.js';

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const WRITE_FLAGS = constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export type EntryKind = 'file' | 'directory' | 'symlink' | 'special' | 'missing';

/** What a path is, without following it: a link is `symlink`, a FIFO, socket or device `special`. */
export function entryKind(path: string): EntryKind {
  let st: Stats | undefined;
  try {
    st = lstatSync(path, { throwIfNoEntry: false });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') return 'missing';
    throw fsError(err, path);
  }
  return kindOf(st);
}

export function kindOf(st: Stats | undefined): EntryKind {
  if (!st) return 'missing';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return 'directory';
  if (st.isFile()) return 'file';
  return 'special';
}

/** A directory entry's kind from readdir's file type, without another system call. */
export function direntKind(entry: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryKind {
  if (entry.isSymbolicLink()) return 'symlink';
  if (entry.isDirectory()) return 'directory';
  if (entry.isFile()) return 'file';
  return 'special';
}

/** Why a path that is not a regular file or directory is refused, for error messages and warnings. */
export function refusalOf(kind: EntryKind): string {
  switch (kind) {
    case 'symlink':
      return 'is a symbolic link; mailferry does not follow links inside a mail store';
    case 'special':
      return 'is not a regular file (a FIFO, socket or device)';
    case 'directory':
      return 'is a directory';
    case 'file':
      return 'is a file';
    case 'missing':
      return 'does not exist';
  }
}

/** The error for a path refused as `kind`. */
export function refusedError(path: string, kind: EntryKind) {
  return dataError(`${path} ${refusalOf(kind)}`);
}

function checkedFd(fd: number, path: string): number {
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (err) {
    closeSync(fd);
    throw fsError(err, path);
  }
  if (!st.isFile()) {
    closeSync(fd);
    throw refusedError(path, kindOf(st));
  }
  return fd;
}

function openError(err: unknown, path: string) {
  // ELOOP is what O_NOFOLLOW answers for a link.
  if ((err as NodeJS.ErrnoException).code === 'ELOOP') return refusedError(path, 'symlink');
  return fsError(err, path);
}

/** Opens a regular file for reading (sync), refusing links and special files. */
export function openFileSync(path: string, mode: 'r' | 'r+' = 'r'): number {
  let fd: number;
  try {
    fd = openSync(path, mode === 'r' ? READ_FLAGS : WRITE_FLAGS);
  } catch (err) {
    throw openError(err, path);
  }
  return checkedFd(fd, path);
}

/** Opens a regular file for reading, refusing links and special files. */
export async function openFile(path: string, mode: 'r' | 'r+' = 'r'): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, mode === 'r' ? READ_FLAGS : WRITE_FLAGS);
  } catch (err) {
    throw openError(err, path);
  }
  let st: Stats;
  try {
    st = await handle.stat();
  } catch (err) {
    await handle.close();
    throw fsError(err, path);
  }
  if (!st.isFile()) {
    await handle.close();
    throw refusedError(path, kindOf(st));
  }
  return handle;
}

/** Reads a whole regular file, refusing links and special files. Undefined when it does not exist. */
export function readFileIfExists(path: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openFileSync(path);
  } catch (err) {
    const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
    if (cause?.code === 'ENOENT' || cause?.code === 'ENOTDIR') return undefined;
    throw err;
  }
  try {
    return readWholeFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** Reads a whole regular file, refusing links and special files. */
export function readFileSafe(path: string): Buffer {
  const fd = openFileSync(path);
  try {
    return readWholeFd(fd);
  } finally {
    closeSync(fd);
  }
}

function readWholeFd(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const chunks: Buffer[] = [];
  let buf = Buffer.allocUnsafe(Math.max(size, 4096));
  let used = 0;
  // The size can move while we read (a file being appended to): read until end of file.
  for (;;) {
    if (used === buf.length) {
      chunks.push(buf);
      buf = Buffer.allocUnsafe(buf.length);
      used = 0;
    }
    const n = readSync(fd, buf, used, buf.length - used, null);
    if (n === 0) break;
    used += n;
  }
  chunks.push(buf.subarray(0, used));
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Opens `path` as a new file for writing: never through a link planted at its name, never
 * truncating someone else's file. An entry already there is a leftover under a name only this
 * process uses (a temp file of the same pid): it is unlinked (a link goes, not what it points
 * to) and the file created again.
 */
export function createNewFileSync(path: string, mode = 0o600): number {
  try {
    return openSync(path, CREATE_FLAGS, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  unlinkSync(path);
  return openSync(path, CREATE_FLAGS, mode);
}

/**
 * Writes the whole buffer: writeSync may write less than it was given (a full disk, a signal),
 * and what was left out would be missing from the file, or join the next line appended to it.
 */
export function writeWholeSync(fd: number, content: string | Buffer): void {
  const buf = typeof content === 'string' ? Buffer.from(content) : content;
  for (let off = 0; off < buf.length; ) {
    const n = writeSync(fd, buf, off, buf.length - off);
    if (n <= 0) throw Object.assign(new Error(`short write: ${off} of ${buf.length} bytes written`), { code: 'EIO' });
    off += n;
  }
}

/** Writes a new file whole (see {@link createNewFileSync}). */
export function writeNewFileSync(path: string, content: string | Buffer, mode = 0o600): void {
  const fd = createNewFileSync(path, mode);
  try {
    writeWholeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}
