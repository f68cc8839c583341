/**
 * Every message's body at the same UID on both sides of a run, as cases 9 and 10 check them:
 * the Maildir files listed in dovecot-uidlist, by mailbox and UID, byte for byte.
 * doveadm's dsync stream shortens runs of CRs before a line feed (a corpus spam has "\r\r\r\n"
 * lines), so with `crTolerated` a body differing only there is counted, not a problem;
 * mailferry gets no such allowance.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listMessages, mailboxDirs, readUidlist, type Tally } from './maildir-files.js';

function uidBodies(root: string): Map<string, { sha1: string; path: string }> {
  const out = new Map<string, { sha1: string; path: string }>();
  for (const [name, dir] of mailboxDirs(root)) {
    const files = new Map(listMessages(dir).map((m) => [m.basename, join(dir, m.sub, m.file)]));
    for (const [uid, base] of readUidlist(dir)) {
      const f = files.get(base);
      if (f) out.set(`${name} ${uid}`, { sha1: createHash('sha1').update(readFileSync(f)).digest('hex'), path: f });
    }
  }
  return out;
}

const withoutCr = (path: string) => readFileSync(path).toString('latin1').replace(/\r/g, '');

export function compareBodies(src: string, dst: string, expected: Tally, crTolerated: boolean): { problems: string[]; crAltered: number } {
  const a = uidBodies(src), b = uidBodies(dst);
  const problems: string[] = [];
  let crAltered = 0;
  const want = Object.values(expected).reduce((n, c) => n + (c.messages ?? 0), 0);
  if (a.size !== want) problems.push(`source has ${a.size} messages listed in dovecot-uidlist, expected ${want}`);
  if (b.size !== want) problems.push(`destination has ${b.size} messages listed in dovecot-uidlist, expected ${want}`);
  let bad = 0;
  for (const [k, h] of a) {
    const other = b.get(k);
    if (other?.sha1 === h.sha1) continue;
    if (other && crTolerated && withoutCr(other.path) === withoutCr(h.path)) {
      crAltered++;
      continue;
    }
    if (++bad <= 3) problems.push(`${k}: ${other ? 'another body on the destination' : 'missing on the destination'}`);
  }
  for (const k of b.keys()) if (!a.has(k) && ++bad <= 3) problems.push(`${k}: only on the destination`);
  if (bad > 3) problems.push(`... ${bad} UIDs differ in all`);
  return { problems, crAltered };
}
