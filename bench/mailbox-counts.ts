/**
 * Checks for the cross-store cases (4-7): per mailbox, how many messages (and, between Maildirs,
 * how many carry each system flag). Mailboxes are keyed as tally() keys a Maildir++ tree: 'INBOX',
 * else the directory name without its dot (mUTF-7, '.' between levels).
 *
 * System flags only: mbsync 1.4 does not carry keywords (but $Forwarded, as the letter P), so
 * comparing them would fail it for a limit it documents, not for lost mail. Message counts and
 * \Seen/\Answered/\Flagged/\Deleted/\Draft are what every tool must carry.
 */
import { spawnSync } from 'node:child_process';
import { encodeMutf7 } from '../src/model/mutf7.js';
import { tally, type Tally } from './maildir-files.js';
import { CLI } from './tools.js';

/**
 * Mailbox -> "messages=N D=.. F=.." with the Maildir letters of IMAP's system flags only: P
 * ("passed") is not one, and mbsync writes it for the $Forwarded keyword, which others keep as
 * a keyword.
 */
export type Counts = Map<string, string>;

export function systemFlagCounts(t: Tally): Counts {
  return new Map(Object.entries(t).map(([mb, c]) => [mb, Object.entries(c)
    .filter(([k, n]) => k === 'messages' || (n !== 0 && /^[DFRST]$/.test(k)))
    .sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `${k}=${n}`).join(' ')]));
}

export const maildirCounts = (root: string): Counts => systemFlagCounts(tally(root));

export function messageCounts(t: Tally): Counts {
  return new Map(Object.entries(t).map(([mb, c]) => [mb, `messages=${c.messages ?? 0}`]));
}

export function toCounts(m: Map<string, number>): Counts {
  return new Map([...m].map(([mb, n]) => [mb, `messages=${n}`]));
}

/**
 * Messages per mailbox of an mbox tree, read by `mailferry mailbox status` with its index in a
 * scratch directory, so neither tool's mbox gets an index it did not write itself.
 */
export function mboxCounts(root: string, scratchIndex: string): Counts {
  const r = spawnSync(process.execPath, [CLI, 'mailbox', 'status', '--json', `mbox:${root}:INDEX=${scratchIndex}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`mailbox status mbox:${root} exited ${r.status}: ${r.stderr.trim()}`);
  const rows = JSON.parse(r.stdout) as { name: string[]; messages: number }[];
  return new Map(rows.map((x) => [x.name.join('.') === 'INBOX' ? 'INBOX' : x.name.map(encodeMutf7).join('.'), `messages=${x.messages}`]));
}

/**
 * Problems (empty: equal). A mailbox the tool created beyond the expected ones is allowed when
 * empty: doveadm creates the \Noselect parent of Lists.* as a real mailbox, which holds no mail.
 */
export function compareCounts(side: string, got: Counts, want: Counts): string[] {
  const problems: string[] = [];
  for (const [mb, w] of want) {
    const g = got.get(mb);
    if (g !== w) problems.push(`${side} ${mb}: ${g ?? 'missing'}, expected ${w}`);
  }
  for (const [mb, g] of got) if (!want.has(mb) && g !== 'messages=0') problems.push(`${side} has an extra mailbox ${mb}: ${g}`);
  return problems.slice(0, 6);
}
