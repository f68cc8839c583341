/**
 * A byte stream to the far side through a command (ssh, or any command speaking the protocol
 * on its stdin/stdout). Its stderr is shown on ours, each line after the host's name; what it
 * said last, and how it ended, explain a connection that broke.
 */
import { spawn } from 'node:child_process';
import { Duplex, PassThrough } from 'node:stream';
import { MailferryError } from '../model/errors.js';

export interface CommandTransport {
  stream: Duplex;
  /** How the command ended (`exit status 255`, `signal SIGKILL`), once it has. */
  ended(): string | undefined;
  /** The last lines it wrote on stderr. */
  lastWords(): string[];
  /**
   * Closes its stdin and waits up to waitMs for it to exit, then sends SIGTERM, and SIGKILL
   * shortly after. 0: a stalled far side, whose ssh would wait on it, is not waited for.
   */
  close(waitMs?: number): Promise<void>;
  /** Resolves when the command has exited (or could not start). */
  exited: Promise<void>;
}

export interface CommandOptions {
  /** Put in front of every stderr line: `nas`. */
  label: string;
  /** Written to the command's stdin before the protocol (remoteprefix:). */
  preamble?: string;
  /** Where stderr lines go (default: our stderr). */
  stderr?: (line: string) => void;
}

/** How long the stream's end waits for the command's exit, so a broken run can say how it ended. */
const EXIT_WAIT_MS = 2000;
/** From SIGTERM to SIGKILL: a command that ignores the first (or is stopped) still ends. */
const KILL_AFTER_MS = 500;

export function startCommand(argv: readonly string[], options: CommandOptions): CommandTransport {
  const [program, ...args] = argv;
  if (!program) throw new MailferryError('config', 'dsync_remote_cmd is empty');
  const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let how: string | undefined;
  const tail: string[] = [];
  const exited = new Promise<void>((resolve) => {
    child.on('error', (err: NodeJS.ErrnoException) => {
      how = err.code === 'ENOENT' ? `could not be started: ${program} not found` : `could not be started: ${err.message}`;
      resolve();
    });
    child.on('exit', (code, signal) => {
      how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      resolve();
    });
  });
  const write = options.stderr ?? ((line: string) => process.stderr.write(`${line}\n`));
  let partial = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      tail.push(line);
      if (tail.length > 5) tail.shift();
      write(`${options.label}: ${line}`);
    }
  });
  child.stderr.on('end', () => {
    if (partial !== '') write(`${options.label}: ${partial}`);
  });
  // The stream ends once the command has exited too (or after a moment), so whoever sees the end
  // can tell how the command ended.
  const readable = new PassThrough();
  child.stdout.pipe(readable, { end: false });
  child.stdout.on('end', () => {
    void Promise.race([exited, new Promise((r) => setTimeout(r, EXIT_WAIT_MS).unref())]).then(() => readable.end());
  });
  child.stdout.on('error', (err) => readable.destroy(err));
  void exited.then(() => {
    // A command that never started has no stdout to end.
    if (child.exitCode === null && child.signalCode === null) readable.end();
  });
  // Writing to a command that has gone away is a broken connection, reported through the stream.
  child.stdin.on('error', () => {});
  if (options.preamble !== undefined) child.stdin.write(options.preamble);
  const stream = Duplex.from({ readable, writable: child.stdin });
  stream.on('error', () => {});
  return {
    stream,
    ended: () => how,
    lastWords: () => [...tail],
    exited,
    async close(waitMs = 10_000) {
      child.stdin.end();
      let killer: NodeJS.Timeout | undefined;
      const terminate = () => {
        child.kill('SIGTERM');
        killer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
      };
      const timer = waitMs > 0 ? setTimeout(terminate, waitMs) : undefined;
      if (!timer && how === undefined) terminate();
      await exited;
      clearTimeout(timer);
      clearTimeout(killer);
    },
  };
}
