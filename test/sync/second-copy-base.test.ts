/**
 * One GUID held twice in a mailbox (two copies of one post where a store names messages by
 * header hash): each copy keeps its own agreed flags, so a flag conflict on the second copy
 * merges flag by flag against that copy's base, not by the no-base rule, and the first copy's
 * base is never taken from the second copy's flags.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import type { MailStore, SystemFlag } from '../../src/storage/store.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { ForeignStore } from '../support/foreign-store.js';
import { INBOX, openMaildir } from './maildir-pair.js';

/** Copy 0 with \Answered and copy 1 with no flags on a GUID-less store A, synced into a Maildir B. */
async function withCopies(fn: (a: MailStore, b: MailStore, set: (s: MailStore, copy: number, flags: SystemFlag[]) => Promise<void>) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-second-copy-'));
  const a = ForeignStore.open(join(dir, 'a'));
  const b = openMaildir(join(dir, 'b'));
  const set = async (s: MailStore, copy: number, flags: SystemFlag[]) => {
    const uid = (await s.getMessages(INBOX)).messages[copy]!.uid;
    await s.updateFlags(INBOX, [{ uid, flags, keywords: [] }]);
  };
  try {
    const x = message('twice');
    await a.saveMessages(INBOX, [req(x, { flags: ['\\Answered'] }), req(x)]);
    await runSync(a, b);
    const [ga, gb] = [(await a.getMessages(INBOX)).messages, (await b.getMessages(INBOX)).messages];
    assert.equal(new Set([...ga, ...gb].map((m) => m.guid)).size, 1, 'one GUID, held twice on each side');
    await fn(a, b, set);
  } finally {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const flagsOf = async (s: MailStore) => (await s.getMessages(INBOX)).messages.map((m) => [...m.flags].sort().join(' '));

it('the second copy: A sets \\Seen, B sets \\Flagged, both stay on both sides', () =>
  withCopies(async (a, b, set) => {
    await set(a, 1, ['\\Seen']);
    await set(b, 1, ['\\Flagged']);
    await runSync(a, b);
    assert.deepEqual(await flagsOf(a), ['\\Answered', '\\Flagged \\Seen']);
    assert.deepEqual(await flagsOf(b), ['\\Answered', '\\Flagged \\Seen']);
  }));

it("the first copy's base is its own: A removes \\Answered, B sets \\Flagged, \\Answered stays removed", () =>
  withCopies(async (a, b, set) => {
    await set(a, 0, []);
    await set(b, 0, ['\\Answered', '\\Flagged']);
    await runSync(a, b);
    assert.deepEqual(await flagsOf(a), ['\\Flagged', '']);
    assert.deepEqual(await flagsOf(b), ['\\Flagged', '']);
  }));

it('and again after that sync: each copy merged against what it was agreed at', () =>
  withCopies(async (a, b, set) => {
    await set(a, 1, ['\\Seen']);
    await runSync(a, b);
    await set(a, 0, []);
    await set(b, 0, ['\\Answered', '\\Draft']);
    await set(a, 1, []);
    await set(b, 1, ['\\Seen', '\\Flagged']);
    await runSync(a, b);
    assert.deepEqual(await flagsOf(a), ['\\Draft', '\\Flagged']);
    assert.deepEqual(await flagsOf(b), ['\\Draft', '\\Flagged']);
  }));
