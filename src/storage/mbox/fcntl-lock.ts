/**
 * POSIX record (fcntl) locks on an mbox file, which Dovecot's readers take (mbox_read_locks =
 * fcntl) and its writers take besides the dotlock. Node has no fcntl and the one native binding
 * is unsound, so a small perl child takes the lock and holds it until its stdin closes: the
 * lock then ends with us even when we are killed. perl-base is Essential on Debian, so it is
 * always there; where it is not, writes fall back to the dotlock alone (with a warning).
 *
 * The file is opened as the store opens it (see safe-fs.ts): never through a link, never
 * waiting on a FIFO.
 *
 * struct flock is packed for LP64 Linux (x86_64, aarch64): short type, short whence, 4 bytes
 * padding, off_t start, off_t len, pid_t pid, 4 bytes padding.
 */
import { spawn } from 'node:child_process';
import { tempError } from '../../model/errors.js';

const SCRIPT = `
use strict; use Fcntl;
my ($path, $type, $timeout) = @ARGV;
$| = 1;
sysopen(my $fh, $path, O_RDWR | O_NOFOLLOW | O_NONBLOCK) or do { print "ERR $!\\n"; exit 2 };
-f $fh or do { print "ERR not a regular file\\n"; exit 2 };
my $lk = pack('s s x4 q q l x4', $type eq 'w' ? F_WRLCK : F_RDLCK, 0, 0, 0, 0);
my $deadline = time + $timeout;
until (fcntl($fh, F_SETLK, $lk)) {
  if ($!{EAGAIN} || $!{EACCES}) {
    if (time >= $deadline) { print "BUSY\\n"; exit 3 }
    select(undef, undef, undef, 0.05);
    next;
  }
  print "ERR $!\\n"; exit 2;
}
print "LOCKED\\n";
my $wait = <STDIN>;
`;

export interface FcntlLock {
  release(): void;
}

let warnedMissing = false;

/**
 * Takes an fcntl lock on the whole of `path`, waiting up to `timeoutSeconds`. Undefined when
 * no lock can be had for reasons other than a holder (no perl, the file is gone).
 */
export function fcntlLock(path: string, type: 'read' | 'write', timeoutSeconds: number, warn: (msg: string) => void): Promise<FcntlLock | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn('perl', ['-e', SCRIPT, path, type === 'write' ? 'w' : 'r', String(timeoutSeconds)], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    let settled = false;
    const settle = (fn: () => void) => {
      if (!settled) {
        settled = true;
        fn();
      }
    };
    child.on('error', (err: NodeJS.ErrnoException) =>
      settle(() => {
        if (err.code === 'ENOENT' && !warnedMissing) {
          warnedMissing = true;
          warn(`perl not found: ${path} and other mbox files are locked by dotlock only, not fcntl`);
        }
        resolve(undefined);
      }),
    );
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (!out.includes('\n')) return;
      const line = out.split('\n', 1)[0]!;
      if (line === 'LOCKED') {
        settle(() =>
          resolve({
            release() {
              child.stdin.end();
            },
          }),
        );
      } else if (line === 'BUSY') {
        settle(() => reject(tempError(`${path}: locked by another process (fcntl) for more than ${timeoutSeconds} s`)));
      } else {
        settle(() => resolve(undefined)); // the file vanished or cannot be opened for writing: nothing to lock
      }
    });
    child.on('exit', () => settle(() => resolve(undefined)));
    // The child must not keep us alive, nor die of a broken pipe before it is told to go.
    child.unref();
    child.stdin.on('error', () => {});
  });
}
