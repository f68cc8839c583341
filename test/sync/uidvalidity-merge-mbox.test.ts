/**
 * A first two-way sync of a Maildir and an mbox that each hold other mail under different
 * UIDVALIDITYs: the side with more messages keeps its UIDVALIDITY, takes the other's mail and
 * the other is rebuilt from it. Taking the mail in used to copy each of the winner's messages
 * whose UID an incoming one wanted to a new UID without expunging the old one, so the rebuild
 * gave the mbox every such message twice; the Maildir then dropped its older copy each run, the
 * mbox kept both, and every later sync renumbered them again (saving and expunging as many
 * messages as the mailbox held, exit 2) while duplicates stayed. Two fresh mailboxes get one
 * UIDVALIDITY only when they are created in the same second, so it came and went from run to run.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { MailStore } from '../../src/storage/store.js';
import { runSync } from '../../src/sync/sync.js';
import { corpusMessages } from '../support/corpus.js';
import { bodyCounts, bodyHash, fill, INBOX, mixedPair } from './mixed-pair.js';

async function check(aCount: number, bCount: number, uidValidityA: number, uidValidityB: number): Promise<void> {
  const mail = corpusMessages(aCount + bCount);
  const pair = await mixedPair('uv-merge');
  try {
    let [a, b] = [pair.openA(), pair.openB()];
    await fill(a, uidValidityA, mail.slice(0, aCount));
    await fill(b, uidValidityB, mail.slice(aCount));
    const uidsBefore = async (s: MailStore) => (await s.getMessages(INBOX)).messages.map((m) => m.uid);
    const winner = aCount >= bCount ? a : b;
    const winnerUids = await uidsBefore(winner);

    const first = await runSync(a, b);
    assert.equal(first.changedDuringSync, false, 'the first run settles (exit 0)');
    const union = [...new Set(mail.map(bodyHash))].sort();
    for (const [label, s] of [['maildir', a], ['mbox', b]] as const) {
      const counts = await bodyCounts(s);
      assert.deepEqual([...counts.keys()].sort(), union, `${label} holds every message`);
      assert.deepEqual([...counts].filter(([, n]) => n > 1), [], `${label} holds each message once`);
    }
    const winnerAfter = await uidsBefore(winner);
    assert.deepEqual(winnerAfter.slice(0, winnerUids.length), winnerUids, 'the side that kept its UIDVALIDITY kept its UIDs');

    await a.close();
    await b.close();
    [a, b] = [pair.openA(), pair.openB()];
    try {
      const again = await runSync(a, b);
      assert.deepEqual([again.saved, again.expunged, again.flagUpdates, again.changedDuringSync], [0, 0, 0, false], 'the next run changes nothing');
    } finally {
      await a.close();
      await b.close();
    }
  } finally {
    await rm(pair.dir, { recursive: true, force: true });
  }
}

describe('two-way sync of a Maildir and an mbox with different UIDVALIDITYs', () => {
  it('the Maildir keeps its UIDVALIDITY: the mbox is rebuilt with each message once, and the next run changes nothing', () => check(4, 3, 1000, 2000));
  it('the mbox keeps its UIDVALIDITY: the Maildir is rebuilt with each message once, and the next run changes nothing', () => check(2, 5, 2000, 1000));
  it('equal counts, each side at UIDs 1..n (the 150 + 150 corpus case, smaller)', () => check(6, 6, 3000, 1000));
});
