/**
 * One replicator a state directory: `replicator.pid` made exclusively, holding the pid. A file
 * whose process is gone (a SIGKILL, a crash) is stale and taken over.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fsError, tempError } from '../model/errors.js';
import { processAlive } from '../storage/process-alive.js';

export const PID_FILE = 'replicator.pid';

export function acquireDaemonLock(dir: string): () => void {
  const path = join(dir, PID_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return () => {
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
        } catch {
          // gone already
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw fsError(err, path);
    }
    let pid = NaN;
    try {
      pid = Number(readFileSync(path, 'utf8').trim());
    } catch {
      continue;
    }
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw tempError(`another mailferry replicator (pid ${pid}) uses ${dir}; stop it first, or give this one its own replicator_state_dir`);
    }
    try {
      unlinkSync(path);
    } catch {
      // another starter took it over first: the next attempt sees its pid
    }
  }
}
