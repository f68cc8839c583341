/**
 * The CLI against a remote: location whose far side is `mailferry dsync-server` run as a local
 * command (dsync_remote_cmd), so the whole path (command, stdin/stdout, stderr relay, exit
 * codes) is tested without ssh.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../cli/cli-child.js';

export { CLI };

/** The far command: this checkout's CLI serving what the location names. */
export const SERVER_CMD = `${process.execPath} ${CLI} -o mail_fsync=never dsync-server`;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function mf(args: readonly string[], remoteCmd = SERVER_CMD, options: { timeout?: number } = {}): Run {
  const r = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', '-o', `dsync_remote_cmd=${remoteCmd}`, ...args], {
    encoding: 'utf8',
    timeout: options.timeout ?? 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the CLI without waiting; `exited` gives its status. */
export function mfChild(args: readonly string[], remoteCmd = SERVER_CMD) {
  const child = spawn(process.execPath, [CLI, '-o', 'mail_fsync=never', '-o', `dsync_remote_cmd=${remoteCmd}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (c: Buffer) => (out.stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out.stderr += c.toString()));
  const exited = new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal === 'SIGKILL' ? 137 : 143))));
  return { child, out, exited };
}

/** A shell script in `dir`, for far sides that misbehave; returns the command that runs it. */
export function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}
