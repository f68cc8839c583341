/**
 * Mail location strings, written the way Dovecot writes `mail_location`:
 * `maildir:~/Maildir[:LAYOUT=fs][:INBOX=path][:INDEX=path]`.
 */
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { usageError } from '../model/errors.js';

export interface MaildirLocation {
  kind: 'maildir';
  /** The string as given, for messages. */
  raw: string;
  root: string;
  layout: 'maildir++' | 'fs';
  /** Directory of INBOX; the root itself unless INBOX= says otherwise. */
  inbox: string;
  /** Directory holding mailferry's change index; the root unless INDEX= says otherwise. */
  indexDir: string;
}

export type MailLocation = MaildirLocation;

function expandHome(path: string, home: string): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return home + path.slice(1);
  return path;
}

export function parseLocation(raw: string, home: string = process.env.HOME ?? homedir()): MailLocation {
  const colon = raw.indexOf(':');
  if (colon <= 0) {
    throw usageError(`invalid mail location '${raw}': expected TYPE:PATH, e.g. maildir:~/Maildir`);
  }
  const type = raw.slice(0, colon).toLowerCase();
  const [pathPart = '', ...params] = raw.slice(colon + 1).split(':');
  if (type !== 'maildir') {
    throw usageError(`unsupported mail location type '${type}' in '${raw}' (supported: maildir)`);
  }
  if (pathPart === '') throw usageError(`invalid mail location '${raw}': the path is empty`);
  const root = resolve(expandHome(pathPart, home));
  const location: MaildirLocation = { kind: 'maildir', raw, root, layout: 'maildir++', inbox: root, indexDir: root };
  for (const param of params) {
    const eq = param.indexOf('=');
    const key = (eq < 0 ? param : param.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? '' : param.slice(eq + 1);
    switch (key) {
      case 'LAYOUT':
        if (value === 'fs') location.layout = 'fs';
        else if (value === 'maildir++' || value === '') location.layout = 'maildir++';
        else throw usageError(`invalid LAYOUT '${value}' in mail location '${raw}' (expected fs or maildir++)`);
        break;
      case 'INBOX':
        if (value === '') throw usageError(`empty INBOX= in mail location '${raw}'`);
        location.inbox = resolve(expandHome(value, home));
        break;
      case 'INDEX':
        if (value === '') throw usageError(`empty INDEX= in mail location '${raw}'`);
        if (value !== 'MEMORY') location.indexDir = resolve(expandHome(value, home));
        break;
      case 'CONTROL':
      case 'VOLATILEDIR':
      case 'UTF8':
      case 'DIRNAME':
        // Dovecot-only tuning parameters; they do not change where mail lives.
        break;
      default:
        throw usageError(`unknown parameter '${key}' in mail location '${raw}'`);
    }
  }
  return location;
}
