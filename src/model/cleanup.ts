/**
 * Work to undo when the process is told to stop (SIGINT, SIGTERM, SIGHUP): a store registers
 * the temporary files it has open so a Ctrl-C does not leave them in `tmp/`. A SIGKILL runs
 * nothing; what it leaves is found by the next run (see each store's stale-file rule).
 */
const cleanups = new Set<() => void>();

/** Registers a synchronous cleanup; the returned function unregisters it. */
export function registerCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Runs every registered cleanup once; errors are swallowed, a cleanup is best effort. */
export function runCleanups(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // best effort: the next run's stale-file rule removes what is left
    }
  }
}

let installed = false;

/** Makes SIGINT, SIGTERM and SIGHUP run the cleanups and exit with 128 + the signal number. */
export function installSignalCleanup(): void {
  if (installed) return;
  installed = true;
  const numbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
  for (const [signal, n] of Object.entries(numbers)) {
    process.on(signal as NodeJS.Signals, () => {
      runCleanups();
      process.stderr.write(`mailferry: interrupted by ${signal}\n`);
      process.exit(128 + n);
    });
  }
}
