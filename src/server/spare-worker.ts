/**
 * One session process started ahead of need, as Dovecot's process_min_avail keeps one: a new
 * session process spends most of a no-op session loading its modules (a profile of a corpus
 * no-op backup: about 0.4 of its 0.6 CPU seconds, and more in wall time on a busy host), which
 * a client otherwise waits through on every connection. The spare waits, serving no one, for
 * the message that makes it a session (and only then takes its user's uid); it ends on its own
 * when the server goes away (its IPC channel closes).
 */
import type { ChildProcess } from 'node:child_process';

export class SpareWorker {
  private spare?: ChildProcess;
  private closed = false;

  constructor(private readonly start: () => ChildProcess) {}

  /** A started process for a session: the spare if it is still there, else a new one. */
  take(): ChildProcess {
    const c = this.spare;
    this.spare = undefined;
    if (c && usable(c)) return c;
    if (c) c.kill('SIGKILL');
    return this.start();
  }

  /** Starts the next spare unless one waits already, or the server is closing. */
  prepare(): void {
    if (this.closed || (this.spare && usable(this.spare))) return;
    const c = this.start();
    c.on('error', () => {});
    c.once('exit', () => {
      if (this.spare === c) this.spare = undefined;
    });
    this.spare = c;
  }

  /** No more spares; the waiting one ends now. */
  close(): void {
    this.closed = true;
    this.spare?.kill('SIGTERM');
    this.spare = undefined;
  }
}

function usable(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null && c.connected;
}
