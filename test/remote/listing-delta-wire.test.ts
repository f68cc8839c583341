/**
 * A remote store's listings over the in-process pipe: asked for again, a mailbox's listing
 * travels as its difference from the last one and is still exactly what the far store lists;
 * a two-way sync (which lists each mailbox before and after it changes it) then sends about
 * half the listing bytes it would without the feature.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/storage/open-store.js';
import { runSync } from '../../src/sync/sync.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { connectInProcess } from './serve-in-process.js';

const local = (location: string) => openStore(location, { create: true, fsync: false, warn: () => {} });

/** Bytes of the replies to getMessages in a rawlog (each reply's frames together), in order. */
function listingReplies(lines: string[], getIds: Set<string>): number[] {
  const byId = new Map<string, number>();
  for (const line of lines) {
    const m = /^\S+ < (Reply|Part) (\d+) (.*)$/.exec(line);
    if (!m || !getIds.has(m[2]!)) continue;
    const size = /\((\d+) bytes\)$/.exec(m[3]!);
    byId.set(m[2]!, (byId.get(m[2]!) ?? 0) + (size ? Number(size[1]) : Buffer.byteLength(m[3]!)));
  }
  return [...byId.values()];
}

function getMessagesIds(lines: string[]): Set<string> {
  const ids = new Set<string>();
  for (const line of lines) {
    const m = /^\S+ > Request (\d+) \{"op":"getMessages"/.exec(line);
    if (m) ids.add(m[1]!);
  }
  return ids;
}

describe('listings as differences over the wire (in-process pipe)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-listing-delta-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('a listing asked for again is the far store’s own, after saves, flag changes and expunges made through the connection', async () => {
    const location = `maildir:${join(dir, 'far')}`;
    const lines: string[] = [];
    const { store: remote } = await connectInProcess(location, { rawlog: (l) => lines.push(l) });
    const box = ['Entwürfe 2024'];
    await remote.createMailbox(box);
    await remote.saveMessages(box, corpusMessages(40).map((b, i) => req(b, { flags: i % 2 ? ['\\Seen'] : [] })));
    const first = await remote.getMessages(box);
    assert.equal(first.messages.length, 40);
    const uids = first.messages.map((m) => m.uid);
    await remote.updateFlags(box, [{ uid: uids[3]!, flags: ['\\Flagged'], keywords: ['work'] }]);
    await remote.expunge(box, [uids[0]!, uids[17]!]);
    await remote.saveMessages(box, corpusMessages(42).slice(40).map((b) => req(b)));
    const second = await remote.getMessages(box);
    const third = await remote.getMessages(box);
    await remote.close();

    const truth = await local(location);
    try {
      const own = await truth.getMessages(box);
      assert.deepEqual(second, own, 'the rebuilt listing is the store’s');
      assert.deepEqual(third, own);
    } finally {
      await truth.close();
    }
    // The rawlog shows a payload's first bytes and its size: the difference is what travelled.
    const sizes = lines.filter((l) => / < Reply \d+ \{"uidValidity"/.test(l)).map((l) => Number(/\((\d+) bytes\)$/.exec(l)?.[1] ?? l.length));
    assert.equal(sizes.length, 3);
    assert.ok(sizes[0]! > 3000, `the first listing is whole (${sizes[0]} bytes)`);
    assert.ok(sizes[1]! < sizes[0]! / 4, `the second is its difference (${sizes[1]} bytes: the new and the reflagged messages, the expunged UIDs)`);
    assert.ok(sizes[2]! < sizes[1]!, `the third, nothing having changed, is smaller still (${sizes[2]} bytes)`);
  });

  it('messages saved through the connection join the last listing on both sides: the listing after a save does not bring them back', async () => {
    const location = `maildir:${join(dir, 'saved')}`;
    const lines: string[] = [];
    const { store: remote } = await connectInProcess(location, { compress: false, rawlog: (l) => lines.push(l) });
    const box = ['Work', 'Q3 2024'];
    await remote.createMailbox(box);
    assert.equal((await remote.getMessages(box)).messages.length, 0);
    const bodies = corpusMessages(200);
    // Some with flags in no particular order, some with keywords the store may keep otherwise: those travel again, the rest not.
    await remote.saveMessages(box, bodies.map((b, i) => req(b, { flags: i % 3 ? ['\\Seen', '\\Answered'] : [], keywords: i % 50 === 0 ? ['zeta', 'alpha'] : [] })));
    const after = await remote.getMessages(box);
    // The far store read by a second, local instance at the same moment.
    const truth = await local(location);
    try {
      assert.deepEqual(after, await truth.getMessages(box));
      const uids = after.messages.map((m) => m.uid);
      await remote.saveMessages(box, corpusMessages(205).slice(200).map((b) => req(b)));
      await remote.expunge(box, [uids[5]!]);
      assert.deepEqual(await remote.getMessages(box), await truth.getMessages(box));
    } finally {
      await truth.close();
    }
    await remote.close();
    const sizes = lines.filter((l) => / < Reply \d+ \{"uidValidity"/.test(l)).map((l) => Number(/\((\d+) bytes\)$/.exec(l)?.[1] ?? l.length));
    assert.equal(sizes.length, 3);
    const whole = JSON.stringify(after.messages.map((m) => [m.uid, m.guid, 0, m.modseq, m.receivedDate, m.size, m.keywords])).length;
    assert.ok(sizes[1]! < whole / 10, `the listing after saving 200 messages is ${sizes[1]} bytes, where the whole listing is about ${whole}`);
    assert.ok(sizes[2]! < whole / 10, `and after 5 more and an expunge ${sizes[2]} bytes`);
  });

  it('a two-way sync with a remote side, compared whole, sends about half the listing bytes, and both sides end alike', async () => {
    const aLoc = `maildir:${join(dir, 'sync-a')}`;
    const bLoc = `maildir:${join(dir, 'sync-b')}`;
    const a = await local(aLoc);
    await a.saveMessages(['INBOX'], corpusMessages(300).map((b) => req(b)));
    let { store: b } = await connectInProcess(bLoc);
    await runSync(a, b);
    await b.close();
    // Changes on the near side, then a sync: every mailbox listed twice on the far side.
    const listed = await a.getMessages(['INBOX']);
    await a.updateFlags(['INBOX'], listed.messages.slice(0, 10).map((m) => ({ uid: m.uid, flags: ['\\Seen', '\\Flagged'], keywords: [] })));
    await a.saveMessages(['INBOX'], corpusMessages(305).slice(300).map((x) => req(x)));
    // New mail on the far side too, at the same UIDs: the sync renumbers it (copies within the
    // mailbox, whose records neither side knows before the store lists them).
    const farSide = await local(bLoc);
    await farSide.saveMessages(['INBOX'], corpusMessages(310).slice(305).map((x) => req(x)));
    await farSide.close();
    const lines: string[] = [];
    ({ store: b } = await connectInProcess(bLoc, { compress: false, rawlog: (l) => lines.push(l) }));
    // Compared whole, as -f, a first sync or a state that cannot be trusted is: an incremental
    // run asks only for changes and the records they name, and lists nothing whole.
    await runSync(a, b, { noIncremental: true });
    await b.close();
    assert.ok(lines.some((l) => l.includes('"copyOf"')), "the far side's new mail was renumbered within its mailbox");
    const replies = listingReplies(lines, getMessagesIds(lines));
    const biggest = Math.max(...replies);
    assert.ok(replies.some((n) => n < biggest / 4), `the listing after the changes is relative to the one before (${replies.join(', ')} bytes)`);
    const traffic = { bytes: replies.reduce((x, y) => x + y, 0) };
    const far = await local(bLoc);
    try {
      const [mine, theirs] = [await a.getMessages(['INBOX']), await far.getMessages(['INBOX'])];
      assert.equal(theirs.messages.length, 310);
      assert.deepEqual(
        theirs.messages.map((m) => [m.uid, m.guid, m.flags.join(' ')]),
        mine.messages.map((m) => [m.uid, m.guid, m.flags.join(' ')]),
      );
      // One whole listing of 310 messages, and a second of only what changed: well under two.
      const whole = JSON.stringify(theirs.messages.map((m) => [m.uid, m.guid, 0, m.modseq, m.receivedDate, m.size, m.keywords])).length;
      assert.ok(traffic.bytes < whole * 1.3, `${traffic.bytes} bytes of listings for a mailbox whose whole listing is about ${whole}`);
    } finally {
      await far.close();
      await a.close();
    }
  });
});
