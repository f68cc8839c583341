/**
 * Where one message lies in its mbox file, as kept in the change index's per-message `file`
 * column: `from,hdr,hdrEnd,body,end,marks,hash`. Marks: `v` the UID is not yet written in the
 * file (X-UID), `b` the message is stored body-only (see stored-message.ts), `q` (written by
 * earlier versions, which undid `>From` quoting) the recorded size is not the size served.
 */
import { FLAG_LETTERS } from '../maildir/filename.js';
import { SYSTEM_FLAGS, type SystemFlag } from '../store.js';

export interface MessageLocation {
  from: number;
  hdr: number;
  hdrEnd: number;
  body: number;
  end: number;
  /** The UID lives only in the change index until the next write gives the message an X-UID. */
  virtualUid: boolean;
  /** Recorded by a reader that undid `>From` quoting: the row's size is stale until the file is scanned again. */
  unquote: boolean;
  bodyOnly: boolean;
  hash: string;
}

export function encodeLocation(l: MessageLocation): string {
  const marks = `${l.virtualUid ? 'v' : ''}${l.unquote ? 'q' : ''}${l.bodyOnly ? 'b' : ''}`;
  return `${l.from},${l.hdr},${l.hdrEnd},${l.body},${l.end},${marks},${l.hash}`;
}

export function decodeLocation(text: string): MessageLocation | undefined {
  const p = text.split(',');
  if (p.length !== 7) return undefined;
  const [from, hdr, hdrEnd, body, end] = p.slice(0, 5).map(Number) as [number, number, number, number, number];
  if (![from, hdr, hdrEnd, body, end].every(Number.isSafeInteger)) return undefined;
  const marks = p[5]!;
  return {
    from,
    hdr,
    hdrEnd,
    body,
    end,
    virtualUid: marks.includes('v'),
    unquote: marks.includes('q'),
    bodyOnly: marks.includes('b'),
    hash: p[6]!,
  };
}

const LETTER_TO_FLAG = new Map<string, SystemFlag>((Object.entries(FLAG_LETTERS) as [SystemFlag, string][]).map(([f, l]) => [l, f]));

/** System flags as the change index stores them (Maildir letters, sorted). */
export function flagsToIndexLetters(flags: readonly SystemFlag[]): string {
  return [...new Set(flags.map((f) => FLAG_LETTERS[f]).filter((l) => l !== undefined))].sort().join('');
}

export function indexLettersToFlags(letters: string): SystemFlag[] {
  const flags = [...letters].map((c) => LETTER_TO_FLAG.get(c)).filter((f): f is SystemFlag => f !== undefined);
  return flags.sort((a, b) => SYSTEM_FLAGS.indexOf(a) - SYSTEM_FLAGS.indexOf(b));
}
