/**
 * uid and gid numbers back to account and group names, for showing them beside the numbers
 * (`mailferry user`). Read from /etc/passwd and /etc/group as system-accounts.ts reads them;
 * each file once per process, and a number no entry names has no name (undefined).
 */
import { readFileSync } from 'node:fs';
import { readSystemAccounts } from './system-accounts.js';

function firstNames(entries: Iterable<[number, string]>): Map<number, string> {
  // Two names for one number: the first listed is the one `ls -l` and `id` show.
  const out = new Map<number, string>();
  for (const [id, name] of entries) if (!out.has(id)) out.set(id, name);
  return out;
}

function* groupEntries(file: string): Generator<[number, string]> {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] !== '' && /^\d+$/.test(f[2]!)) yield [Number(f[2]), f[0]!];
  }
}

export class AccountNames {
  private users: Map<number, string> | undefined;
  private groups: Map<number, string> | undefined;

  constructor(
    private readonly passwdFile = '/etc/passwd',
    private readonly groupFile = '/etc/group',
  ) {}

  userName(uid: number): string | undefined {
    this.users ??= this.load(() => readSystemAccounts(this.passwdFile).map((a): [number, string] => [a.uid, a.name]));
    return this.users.get(uid);
  }

  groupName(gid: number): string | undefined {
    this.groups ??= this.load(() => groupEntries(this.groupFile));
    return this.groups.get(gid);
  }

  private load(entries: () => Iterable<[number, string]>): Map<number, string> {
    try {
      return firstNames(entries());
    } catch {
      // Names are a courtesy beside the numbers: an unreadable file only means none are shown.
      return new Map();
    }
  }
}
