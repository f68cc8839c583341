/**
 * The command that reaches the far side: the `dsync_remote_cmd` setting with `%{login}`,
 * `%{host}` and `%{user}` expanded, pure. As in dsync, the command is split on spaces and an
 * argument whose variables all expand to nothing is dropped (`-l%{login}` without a login).
 * An explicit far LOCATION is appended as the last argument. ssh hands the words after the
 * host to a shell on the far side, so there the values we put in are single-quoted: a mail
 * path with spaces or `$` arrives as written.
 */
import { basename } from 'node:path';
import { MailferryError } from '../model/errors.js';
import { expandTemplate } from '../config/template.js';
import type { RemoteLocation } from './remote-location.js';

export const DEFAULT_REMOTE_CMD = 'ssh -l%{login} %{host} mailferry dsync-server -u%{user}';

/** POSIX shell single quotes. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export function remoteCommandArgs(template: string, remote: RemoteLocation, user: string | undefined): string[] {
  const words = template.split(/\s+/).filter((w) => w !== '');
  if (words.length === 0) throw new MailferryError('config', 'dsync_remote_cmd is empty');
  const viaSsh = basename(words[0]!) === 'ssh';
  const vars = { login: remote.login ?? '', host: remote.host, user: user ?? '' };
  const out: string[] = [];
  let pastHost = false;
  for (const word of words) {
    let variables = 0;
    let filled = 0;
    const quote = viaSsh && pastHost;
    const expanded = expandTemplate(word, vars, {
      what: 'dsync_remote_cmd',
      escape: (value) => {
        variables++;
        if (value !== '') filled++;
        return quote && value !== '' ? shellQuote(value) : value;
      },
    });
    if (word.includes('%{host}')) pastHost = true;
    if (variables > 0 && filled === 0) continue;
    out.push(expanded);
  }
  if (remote.location !== undefined) out.push(viaSsh ? shellQuote(remote.location) : remote.location);
  return out;
}
