/**
 * After every timed run: is the result right? A fast-but-wrong run must not pass silently.
 *
 * Two independent views, both compared between source and destination and against what the
 * case must produce:
 * - the file system (maildir-files.ts): per mailbox, the number of messages and of each flag
 *   and keyword;
 * - `mailferry mailbox status --json` with INDEX= in a scratch directory, so this check never
 *   writes into either tool's Maildir or gives mailferry an index it did not build itself:
 *   per mailbox, the message count, UIDVALIDITY, UIDNEXT and mailbox GUID.
 */
import { spawnSync } from 'node:child_process';
import { encodeMutf7 } from '../src/model/mutf7.js';
import { tally, tallyText, type Tally } from './maildir-files.js';
import { CLI } from './tools.js';

interface Status { mailbox: string; messages: number; uidvalidity: number; uidnext: number; guid: string }

function status(root: string, indexDir: string): Status[] {
  const r = spawnSync(process.execPath, [CLI, 'mailbox', 'status', '--json', `maildir:${root}:INDEX=${indexDir}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`mailbox status ${root} exited ${r.status}: ${r.stderr.trim()}`);
  return (JSON.parse(r.stdout) as Status[]).sort((a, b) => (a.mailbox < b.mailbox ? -1 : 1));
}

/** The tally key of a mailbox name as `mailbox status` prints it (Maildir++ dir name without its dot). */
const dirKey = (mailbox: string) => (mailbox === 'INBOX' ? 'INBOX' : encodeMutf7(mailbox));

/**
 * Returns the problems found (empty: correct). `indexDirs` are scratch INDEX= dirs for the
 * source and destination, kept for one repetition so each check rescans only what changed.
 */
export function checkPair(src: string, dst: string, expected: Tally, indexDirs: [string, string]): string[] {
  const problems: string[] = [];
  const want = tallyText(expected);
  for (const [side, root] of [['source', src], ['destination', dst]] as const) {
    const got = tallyText(tally(root));
    if (got !== want) problems.push(`${side} files: ${diff(got, want)}`);
  }
  let s: Status[], d: Status[];
  try {
    s = status(src, indexDirs[0]);
    d = status(dst, indexDirs[1]);
  } catch (e) {
    return [...problems, (e as Error).message];
  }
  const key = (x: Status) => `${x.mailbox} messages=${x.messages} uidvalidity=${x.uidvalidity} uidnext=${x.uidnext} guid=${x.guid}`;
  const sk = s.map(key).join('\n'), dk = d.map(key).join('\n');
  if (sk !== dk) problems.push(`mailbox status differs: ${diff(dk, sk)}`);
  for (const x of d) {
    const n = expected[dirKey(x.mailbox)]?.messages;
    if (n !== x.messages) problems.push(`destination ${x.mailbox}: ${x.messages} messages, expected ${n ?? 'no such mailbox'}`);
  }
  if (d.length !== Object.keys(expected).length) problems.push(`destination has ${d.length} mailboxes, expected ${Object.keys(expected).length}`);
  return problems;
}

/** A short hint of where two texts first differ. */
function diff(got: string, want: string): string {
  let i = 0;
  while (i < got.length && got[i] === want[i]) i++;
  const from = Math.max(0, i - 60);
  return `got …${got.slice(from, i + 80)}… want …${want.slice(from, i + 80)}…`;
}
