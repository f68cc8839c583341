/**
 * Opens a `remote:` location: runs `dsync_remote_cmd` for it, speaks the protocol over the
 * command's stdin/stdout, and asks the far side to open its store (and take its run lock).
 * When the command fails before the protocol starts, the error says how it ended and what it
 * last wrote: a missing mailferry on the far side (127) is a configuration error; a far
 * mailferry that refused with one of its own statuses (no mail_location there, an unknown
 * user) keeps that status and its message; anything else (ssh could not connect, 255) is one
 * to retry.
 */
import { userInfo } from 'node:os';
import { MailferryError, type ErrorKind } from '../model/errors.js';
import type { MailStore } from '../storage/store.js';
import { startCommand, type CommandTransport } from './command-transport.js';
import { DEFAULT_REMOTE_CMD, remoteCommandArgs } from './remote-command.js';
import { parseRemoteLocation } from './remote-location.js';
import { openRawlogFile } from './rawlog-file.js';
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

/** The exit statuses a far mailferry ends with on its own, as the kinds that give them here. */
const FAR_STATUSES: ReadonlyMap<number, ErrorKind> = new Map([
  [64, 'usage'],
  [65, 'data'],
  [67, 'nouser'],
  [77, 'permission'],
  [78, 'config'],
]);

/** A far mailferry's own refusal: its status and its one `mailferry: error:` line, or undefined. */
export function farRefusal(how: string, said: string | undefined, label: string): MailferryError | undefined {
  const status = /^exited with status (\d+)$/.exec(how);
  const kind = status ? FAR_STATUSES.get(Number(status[1])) : undefined;
  const m = said !== undefined ? /^mailferry: error: (.+)$/.exec(said.trim()) : null;
  if (!kind || !m) return undefined;
  // The far CLI's hint about its own --help is no help here.
  return new MailferryError(kind, `${label}: ${m[1]!.replace(/ \(run mailferry --help for usage\)$/, '')}`);
}

function explain(err: unknown, how: string | undefined, handshaken: boolean, transport: CommandTransport, argv: readonly string[], label: string): unknown {
  // What the far store said, and what the far side sent that is not our protocol, stand as they are.
  if (!how || !(err instanceof MailferryError) || err instanceof PeerError || err.kind !== 'tempfail') return err;
  const said = transport.lastWords().filter((l) => l.trim() !== '').at(-1);
  const refused = handshaken ? undefined : farRefusal(how, said, label);
  if (refused) return refused;
  const detail = `the command '${argv.join(' ')}' ${how}${said ? ` (${said})` : ''}`;
  if (/status 127$/.test(how) || how.startsWith('could not be started')) {
    return new MailferryError('config', `${label}: ${detail}: set dsync_remote_cmd, or install mailferry on the far side`);
  }
  return new MailferryError('tempfail', `${label}: the connection ended before the protocol started: ${detail}`);
}

export async function openRemoteStore(raw: string, options: RemoteOpenOptions = {}): Promise<MailStore> {
  const remote = parseRemoteLocation(raw);
  const argv = remoteCommandArgs(options.command ?? DEFAULT_REMOTE_CMD, remote, options.user);
  const rawlog = options.rawlogFile !== undefined ? openRawlogFile(options.rawlogFile) : undefined;
  const preamble = remote.prefix ? `${options.user ?? userInfo().username}\n` : undefined;
  const transport = startCommand(argv, { label: remote.host, preamble, stderr: options.stderr });
  let handshaken = false;
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
      onHandshake: () => (handshaken = true),
      // A connection that failed (a stall past -T) ends its command at once: ssh would wait on
      // a far side that is frozen.
      onClosed: async (err) => {
        await transport.close(err ? 0 : undefined);
        rawlog?.close();
      },
    });
  } catch (err) {
    // A command that ended by itself explains the failure; one still running (stalled) does not,
    // and the kill that follows is ours: at once, unless the far store answered and can end by itself.
    await Promise.race([transport.exited, new Promise((r) => setTimeout(r, 500).unref())]);
    const how = transport.ended();
    await transport.close(err instanceof PeerError ? 2000 : 0);
    rawlog?.close();
    throw explain(err, how, handshaken, transport, argv, `remote ${remote.host}`);
  }
}
