/**
 * Whether a process of this machine still runs: the test that proves a lock or temp file
 * stale. EPERM means it runs under another user.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
