/**
 * Whose the benchmark's accounts are. As root they belong to nobody: Dovecot refuses uid 0 for
 * mail users, and mailferry run as root takes each account's uid from the userdb, so both tools
 * then work on the accounts as the same unprivileged user.
 */
import { readFileSync } from 'node:fs';

export interface MailOwner { uid: number; gid: number; root: boolean }

/** nobody's uid and gid when we are root, else ours. */
export function mailOwner(): MailOwner {
  if (process.getuid?.() !== 0) return { uid: process.getuid!(), gid: process.getgid!(), root: false };
  const f = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((x) => x[0] === 'nobody');
  if (!f) throw new Error('no user "nobody" in /etc/passwd: the accounts need a uid other than root');
  return { uid: Number(f[2]), gid: Number(f[3]), root: true };
}

export function groupName(gid: number): string {
  return readFileSync('/etc/group', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[2] === String(gid))?.[0] ?? String(gid);
}

export function userNameOf(uid: number): string {
  return readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[2] === String(uid))?.[0] ?? String(uid);
}
