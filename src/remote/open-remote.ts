/**
 * Opens a `remote:` location: runs `dsync_remote_cmd` for it, speaks the protocol over the
 * command's stdin/stdout, and asks the far side to open its store (and take its run lock).
 * When the command fails before the protocol starts, the error says how it ended and what it
 * last wrote: a missing mailferry on the far side (127) is a configuration error, anything
 * else (ssh could not connect) one to retry.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { userInfo } from 'node:os';
import { fsError, MailferryError } from '../model/errors.js';
import type { MailStore } from '../storage/store.js';
import { startCommand, type CommandTransport } from './command-transport.js';
import { DEFAULT_REMOTE_CMD, remoteCommandArgs } from './remote-command.js';
import { parseRemoteLocation } from './remote-location.js';
import { RemoteStore } from './remote-store.js';
import { PeerError } from './wire-errors.js';

export interface RemoteOpenOptions {
  /** dsync_remote_cmd. */
  command?: string;
  /** Offer deflate (default true). */
  compress?: boolean;
  /** The user this run is for (-u): %{user}, and the name remoteprefix: sends. */
  user?: string;
  create?: boolean;
  force?: boolean;
  lockTimeoutSeconds?: number;
  /** -T: seconds the far side may stall (0: never). */
  ioTimeoutSeconds?: number;
  /** -r FILE: every frame written there, one line each. */
  rawlogFile?: string;
  /** Where the command's stderr lines go (default: our stderr). */
  stderr?: (line: string) => void;
}

function explain(err: unknown, how: string | undefined, transport: CommandTransport, argv: readonly string[], label: string): unknown {
  // What the far store said, and what the far side sent that is not our protocol, stand as they are.
  if (!how || !(err instanceof MailferryError) || err instanceof PeerError || err.kind !== 'tempfail') return err;
  const said = transport.lastWords().filter((l) => l.trim() !== '').at(-1);
  const detail = `the command '${argv.join(' ')}' ${how}${said ? ` (${said})` : ''}`;
  if (/status 127$/.test(how) || how.startsWith('could not be started')) {
    return new MailferryError('config', `${label}: ${detail}: set dsync_remote_cmd, or install mailferry on the far side`);
  }
  return new MailferryError('tempfail', `${label}: the connection ended before the protocol started: ${detail}`);
}

export function openRawlog(file: string): { write(line: string): void; close(): void } {
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

export async function openRemoteStore(raw: string, options: RemoteOpenOptions = {}): Promise<MailStore> {
  const remote = parseRemoteLocation(raw);
  const argv = remoteCommandArgs(options.command ?? DEFAULT_REMOTE_CMD, remote, options.user);
  const rawlog = options.rawlogFile !== undefined ? openRawlog(options.rawlogFile) : undefined;
  const preamble = remote.prefix ? `${options.user ?? userInfo().username}\n` : undefined;
  const transport = startCommand(argv, { label: remote.host, preamble, stderr: options.stderr });
  try {
    return await RemoteStore.connect(transport.stream, {
      label: `remote ${remote.host}`,
      location: raw,
      open: { create: options.create ?? false, force: options.force ?? false, lockSeconds: options.lockTimeoutSeconds ?? 30, runLock: true },
      compress: options.compress ?? true,
      timeoutMs: (options.ioTimeoutSeconds ?? 600) * 1000,
      rawlog: rawlog?.write,
      closeReason: () => {
        const how = transport.ended();
        return how ? `the command ${how}` : undefined;
      },
      onClosed: async () => {
        await transport.close();
        rawlog?.close();
      },
    });
  } catch (err) {
    // A command that ended by itself explains the failure; one still running (stalled) does not,
    // and the kill that follows is ours.
    await Promise.race([transport.exited, new Promise((r) => setTimeout(r, 500).unref())]);
    const how = transport.ended();
    await transport.close(2000);
    rawlog?.close();
    throw explain(err, how, transport, argv, `remote ${remote.host}`);
  }
}
