/**
 * Shared plumbing for commands: global options, opening a store, and turning errors into
 * one line on stderr and the documented exit status.
 */
import { exitCodeOf, MailferryError, tempError } from '../model/errors.js';
import type { MailStore } from '../storage/store.js';

export interface GlobalOptions {
  o: string[];
  debug?: boolean;
  verbose?: boolean;
  passwordFile?: string;
  /** -c FILE: the configuration file ('' for none). */
  config?: string;
}

export async function withStore(location: string, globals: GlobalOptions, fn: (store: MailStore) => Promise<void>): Promise<void> {
  // The stores load when a command opens one, not with the command line's definitions.
  const [{ settingsFrom, storeOptions }, { openStore }] = await Promise.all([import('./settings.js'), import('../storage/open-store.js')]);
  const settings = settingsFrom(globals);
  const store = await openStore(location, storeOptions(settings));
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * SQLite reports a change index another process holds past the busy timeout as an error of its
 * own; it is a reason to retry, never a crash to show a stack trace for.
 */
function asKnownError(err: unknown): unknown {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) {
    return tempError(`a change index is in use by another process (${(err as Error).message}); retry later`, err);
  }
  return err;
}

export function reportError(thrown: unknown, debug: boolean): number {
  const err = asKnownError(thrown);
  const message = err instanceof MailferryError ? err.message : `internal error: ${(err as Error)?.stack ?? String(err)}`;
  process.stderr.write(`mailferry: error: ${message}\n`);
  if (debug && err instanceof Error && err.cause) process.stderr.write(`caused by: ${String((err.cause as Error).stack ?? err.cause)}\n`);
  return exitCodeOf(err);
}
