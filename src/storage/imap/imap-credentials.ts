/**
 * Where an IMAP secret comes from, in order: the location's passfile= or else the global
 * --password-file (first line of either), the
 * MAILFERRY_PASSWORD environment variable, a prompt when stdin is a terminal. Never argv: a
 * command line is visible to every user of the machine. With auth=xoauth2|oauthbearer the
 * secret is an access token printed by the `oauth2_token_cmd` command, run afresh for each
 * connection so an expiring token is renewed.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { configError, fsError, usageError } from '../../model/errors.js';
import type { ImapLocation } from '../../config/imap-location.js';

export interface ImapCredentialOptions {
  passwordFile?: string;
  /** A shell command whose standard output is an OAuth2 access token. */
  oauth2TokenCmd?: string;
}

export type ImapSecret = { kind: 'password'; password: string } | { kind: 'token'; command: string };

export async function readSecret(loc: ImapLocation, options: ImapCredentialOptions): Promise<ImapSecret> {
  if (loc.auth === 'xoauth2' || loc.auth === 'oauthbearer') {
    const command = options.oauth2TokenCmd ?? process.env.MAILFERRY_OAUTH2_TOKEN_CMD;
    if (!command) throw configError(`${loc.raw}: auth=${loc.auth} needs -o oauth2_token_cmd=COMMAND (a command printing an access token)`);
    return { kind: 'token', command };
  }
  const file = loc.passFile ?? options.passwordFile;
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw fsError(err, `password file ${file}`);
    }
    const password = text.split(/\r?\n/)[0] ?? '';
    if (password === '') throw configError(`password file ${file} is empty`);
    return { kind: 'password', password };
  }
  const env = process.env.MAILFERRY_PASSWORD;
  if (env !== undefined && env !== '') return { kind: 'password', password: env };
  if (process.stdin.isTTY && process.stderr.isTTY) return { kind: 'password', password: await promptPassword(`Password for ${loc.user}@${loc.host}: `) };
  throw usageError(`${loc.raw}: no password: use --password-file FILE or set MAILFERRY_PASSWORD (there is no terminal to ask on)`);
}

export function runTokenCommand(command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', command], { timeout: 60_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(configError(`oauth2_token_cmd failed: ${String(stderr).trim() || err.message}`));
      const token = String(stdout).trim();
      if (token === '') return reject(configError('oauth2_token_cmd printed no token'));
      resolve(token);
    });
  });
}

/** Reads a line from the terminal with echo off. */
function promptPassword(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    let typed = '';
    const finish = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(usageError('interrupted at the password prompt'));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    stdin.on('data', onData);
  });
}
