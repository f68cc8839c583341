/**
 * The system's accounts and groups, from /etc/passwd and /etc/group: for the passwd userdb, and
 * to turn names (`uid=vmail`) into numbers. Node has no getpwnam; these files are what the C
 * library reads on a machine without NSS modules (accounts only in LDAP are not seen).
 */
import { readFileSync } from 'node:fs';
import { MailferryError } from '../../model/errors.js';

export interface SystemAccount {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export function parsePasswdLine(line: string): SystemAccount | undefined {
  if (line === '' || line.startsWith('#')) return undefined;
  const f = line.split(':');
  if (f.length < 7) return undefined;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) return undefined;
  return { name: f[0]!, uid, gid, home: f[5]!, shell: f[6]! };
}

export function readSystemAccounts(file = '/etc/passwd'): SystemAccount[] {
  return readFileSync(file, 'utf8').split('\n').map(parsePasswdLine).filter((a): a is SystemAccount => a !== undefined);
}

function readGroups(file = '/etc/group'): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && /^\d+$/.test(f[2]!)) out.set(f[0]!, Number(f[2]));
  }
  return out;
}

/** A uid written as a number or an account name; `where` names the setting or file line. */
export function resolveUid(value: string, where: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const account = readSystemAccounts().find((a) => a.name === value);
  if (!account) throw new MailferryError('config', `${where}: uid '${value}' is neither a number nor a system account`);
  return account.uid;
}

export function resolveGid(value: string, where: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const gid = readGroups().get(value);
  if (gid === undefined) throw new MailferryError('config', `${where}: gid '${value}' is neither a number nor a system group`);
  return gid;
}
