/**
 * The per-mailbox record of the last time two stores were in sync, and the test that lets a
 * run skip a mailbox: when neither side's UIDVALIDITY, UIDNEXT or HIGHESTMODSEQ moved since,
 * nothing in it can have changed (every change, ours or another program's, raises the modseq).
 */
import type { MailboxStatus, PairMailboxState } from '../storage/store.js';

type Status = Pick<MailboxStatus, 'uidValidity' | 'uidNext' | 'highestModseq'>;

export function pairStateOf(a: Status, b: Status): PairMailboxState {
  return {
    uidValidity: a.uidValidity,
    uidNext: a.uidNext,
    highestModseq: a.highestModseq,
    peerUidValidity: b.uidValidity,
    peerUidNext: b.uidNext,
    peerHighestModseq: b.highestModseq,
  };
}

/** The same record as the peer keeps it, proven or not as it is. */
export function mirror(s: PairMailboxState): PairMailboxState {
  const m = pairStateOf(
    { uidValidity: s.peerUidValidity, uidNext: s.peerUidNext, highestModseq: s.peerHighestModseq },
    { uidValidity: s.uidValidity, uidNext: s.uidNext, highestModseq: s.highestModseq },
  );
  return isProven(s) ? proven(m) : m;
}

/** A record that the run writing it proved: both sides were equal at these numbers. */
export function proven(s: PairMailboxState): PairMailboxState {
  return { ...unproven(s), proven: true };
}

/** The numbers alone: what a backup, `-s` or `sync -1` records (they prove no two-way equality). */
export function unproven(s: PairMailboxState): PairMailboxState {
  const { proven: _, ...numbers } = s;
  return numbers;
}

export const isProven = (s: PairMailboxState | undefined): boolean => s?.proven === true;

export function unchangedSince(before: PairMailboxState | undefined, a: Status, b: Status): before is PairMailboxState {
  return (
    before !== undefined &&
    before.uidValidity === a.uidValidity && before.uidNext === a.uidNext && before.highestModseq === a.highestModseq &&
    before.peerUidValidity === b.uidValidity && before.peerUidNext === b.uidNext && before.peerHighestModseq === b.highestModseq
  );
}
