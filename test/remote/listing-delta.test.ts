/**
 * Listings sent as differences: whatever changed between two listings of a mailbox (messages
 * added, removed, reflagged, renumbered, expunges remembered or forgotten), the client rebuilds
 * exactly the listing the server's store gave, and the difference carries only what changed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hash53, KEPT_LISTINGS, ListingCache, ListingMemory, savedRecord } from '../../src/remote/listing-delta.js';
import { ProtocolError } from '../../src/remote/protocol-error.js';
import type { MailboxChanges, MessageMeta, SystemFlag } from '../../src/storage/store.js';

const FLAGS: SystemFlag[] = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'];

const metaArb = (uid: number) =>
  fc.record({
    guid: fc.constantFrom('a', 'b', 'c', `1700000000.M${uid}P1.host`, 'ümlaut guid'),
    flags: fc.subarray(FLAGS),
    keywords: fc.subarray(['$Forwarded', 'Junk', 'work']),
    modseq: fc.integer({ min: 1, max: 50 }),
    receivedDate: fc.constantFrom(1700000000000, 1700000001000),
    size: fc.integer({ min: 0, max: 5000 }),
  }, { noNullPrototype: true }).map((m): MessageMeta => ({ uid, ...m }));

const listingArb = fc
  .uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 30 })
  .chain((uids) => fc.tuple(...[...uids].sort((a, b) => a - b).map(metaArb)))
  .chain((messages) =>
    fc.record({
      expunged: fc.array(fc.record({ uid: fc.integer({ min: 61, max: 80 }), guid: fc.constantFrom('x', 'y'), modseq: fc.integer({ min: 1, max: 9 }) }, { noNullPrototype: true }), { maxLength: 5 }),
      highestModseq: fc.integer({ min: 1, max: 100 }),
    }, { noNullPrototype: true }).map((r): MailboxChanges => ({ uidValidity: 7, uidNext: 100, incremental: false, messages, ...r })),
  );

/** A later listing: some of the earlier one's messages kept as they were, the rest changed or gone. */
const pairArb = listingArb.chain((a) =>
  fc.tuple(fc.constant(a), listingArb, fc.array(fc.boolean(), { minLength: a.messages.length, maxLength: a.messages.length }), fc.boolean()).map(([a, b, keep, keepExpunged]) => {
    const byUid = new Map(b.messages.map((m) => [m.uid, m]));
    a.messages.forEach((m, i) => keep[i] && byUid.set(m.uid, m));
    const messages = [...byUid.values()].sort((x, y) => x.uid - y.uid);
    return [a, { ...b, messages, expunged: keepExpunged ? [...a.expunged, ...b.expunged] : b.expunged }] as const;
  }),
);

/** What a request for a whole listing named: the base it builds on. */
const wholeAsked = (base: number | undefined) => ({ base, whole: true });

describe('listings as differences from the last one', () => {
  it('the client rebuilds every later listing exactly, from only the records that changed', () => {
    fc.assert(
      fc.property(pairArb, ([a, b]) => {
        const server = new ListingMemory();
        const client = new ListingCache();
        assert.equal(client.baseFor('INBOX'), undefined);
        const first = server.reply('INBOX', a, undefined);
        assert.equal(first.base, undefined);
        assert.deepEqual(client.take('INBOX', first, wholeAsked(undefined)), a);
        const base = client.baseFor('INBOX');
        assert.equal(base, first.listing);
        const second = server.reply('INBOX', b, base);
        assert.equal(second.base, base);
        assert.deepEqual(client.take('INBOX', second, wholeAsked(base)), b);
        const before = new Map(a.messages.map((m) => [m.uid, JSON.stringify(m)]));
        const changed = b.messages.filter((m) => before.get(m.uid) !== JSON.stringify(m));
        assert.deepEqual(second.messages, changed, 'only new or changed records travel');
        const now = new Set(b.messages.map((m) => m.uid));
        assert.deepEqual(second.removed, a.messages.filter((m) => !now.has(m.uid)).map((m) => m.uid));
        // A third listing, unchanged: nothing but the numbers travels.
        const thirdBase = client.baseFor('INBOX');
        const third = server.reply('INBOX', b, thirdBase);
        assert.deepEqual([third.messages, third.removed], [[], []]);
        assert.deepEqual(client.take('INBOX', third, wholeAsked(thirdBase)), b);
      }),
      { numRuns: 300 },
    );
  });

  it('saved messages joined to both sides\' last listing rebuild the next one exactly; a UID already listed leaves both as they were', () => {
    fc.assert(
      fc.property(pairArb, fc.uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 8 }), fc.boolean(), ([a, b], savedUids, known) => {
        const server = new ListingMemory();
        const client = new ListingCache();
        client.take('INBOX', server.reply('INBOX', a, undefined), wholeAsked(undefined));
        const records = savedUids.map((uid) => savedRecord({ uid, guid: `saved-${uid}`, modseq: 60 + uid }, { flags: ['\\Seen', '\\Answered'], keywords: ['k'], receivedDate: 1700000000000, size: uid * 10 }));
        // Unknown records (a copy within the mailbox, a body not seen whole) join nowhere.
        const taken = server.saved('INBOX', known ? records : undefined);
        client.saved('INBOX', taken, known ? records : undefined);
        assert.equal(taken, known && !savedUids.some((u) => a.messages.some((m) => m.uid === u)));
        assert.notEqual(client.baseFor('INBOX'), undefined);
        // The store then lists b, with some of the saved messages as saved and others otherwise.
        const byUid = new Map(b.messages.map((m) => [m.uid, m]));
        records.forEach((r, i) => byUid.set(r.uid, i % 2 ? r : { ...r, size: r.size + 1 }));
        const next = { ...b, messages: [...byUid.values()].sort((x, y) => x.uid - y.uid) };
        const nextBase = client.baseFor('INBOX');
        const reply = server.reply('INBOX', next, nextBase);
        assert.notEqual(reply.base, undefined);
        assert.deepEqual(client.take('INBOX', reply, wholeAsked(nextBase)), next);
        if (taken) assert.ok(reply.messages.every((m) => !records.some((r, i) => i % 2 === 1 && r.uid === m.uid && JSON.stringify(byUid.get(m.uid)) === JSON.stringify(r))), 'a saved message listed as saved does not travel');
      }),
      { numRuns: 300 },
    );
  });

  it('a base the server no longer holds, or another mailbox, gets the whole listing', () => {
    const m = (uid: number): MessageMeta => ({ uid, guid: `g${uid}`, flags: [], keywords: [], modseq: uid, receivedDate: 0, size: 10 });
    const listing: MailboxChanges = { uidValidity: 1, uidNext: 4, highestModseq: 3, incremental: false, messages: [m(1), m(2), m(3)], expunged: [] };
    const server = new ListingMemory();
    const client = new ListingCache();
    const first = client.take('INBOX', server.reply('INBOX', listing, undefined), wholeAsked(undefined));
    assert.deepEqual(first, listing);
    for (let i = 0; i < KEPT_LISTINGS; i++) client.take(`box${i}`, server.reply(`box${i}`, listing, undefined), wholeAsked(undefined));
    // INBOX's listing was the oldest of KEPT_LISTINGS + 1: both sides let it go.
    assert.equal(client.baseFor('INBOX'), undefined);
    const whole = server.reply('INBOX', listing, 1);
    assert.equal(whole.base, undefined);
    assert.equal(whole.messages.length, 3);
  });

  it('a listing relative to a base the client does not hold, or out of order, is a protocol error', () => {
    const client = new ListingCache();
    const reply = { uidValidity: 1, uidNext: 2, highestModseq: 1, incremental: false, messages: [], expunged: [], listing: 5, base: 4, removed: [], keptExpunged: 0 };
    assert.throws(() => client.take('INBOX', reply, wholeAsked(4)), ProtocolError);
    const m = (uid: number): MessageMeta => ({ uid, guid: `g${uid}`, flags: [], keywords: [], modseq: 1, receivedDate: 0, size: 1 });
    client.take('INBOX', { ...reply, base: undefined, listing: 4, messages: [m(1)] }, wholeAsked(undefined));
    assert.throws(() => client.take('INBOX', { ...reply, messages: [m(3), m(2)] }, wholeAsked(4)), /ascending UID order/);
    client.take('INBOX', { ...reply, base: undefined, listing: 4, messages: [m(1)] }, wholeAsked(undefined));
    assert.throws(() => client.take('INBOX', { ...reply, keptExpunged: 2 }, wholeAsked(4)), /keeps 2 expunges/);
    // A difference from a base the request did not name (a server answering another request's way).
    client.take('INBOX', { ...reply, base: undefined, listing: 4, messages: [m(1)] }, wholeAsked(undefined));
    assert.throws(() => client.take('INBOX', { ...reply, listing: 6 }, wholeAsked(undefined)), /which the request did not name/);
  });

  it("the reply to a listing of changes since a modseq leaves the kept listing as it was, so a whole listing in flight still builds on it", () => {
    const m = (uid: number): MessageMeta => ({ uid, guid: `g${uid}`, flags: [], keywords: [], modseq: uid, receivedDate: 0, size: 10 });
    const a: MailboxChanges = { uidValidity: 1, uidNext: 4, highestModseq: 3, incremental: false, messages: [m(1), m(2), m(3)], expunged: [] };
    const b: MailboxChanges = { ...a, uidNext: 5, highestModseq: 4, messages: [m(1), m(2), m(3), m(4)] };
    const server = new ListingMemory();
    const client = new ListingCache();
    client.take('INBOX', server.reply('INBOX', a, undefined), wholeAsked(undefined));
    const base = client.baseFor('INBOX');
    // Asked first and answered last: a whole listing relative to the kept one...
    const slow = server.reply('INBOX', b, base);
    // ...overtaken by the answer to `changes since modseq 3`, which names no listing.
    const since: MailboxChanges = { ...b, incremental: true, messages: [m(4)] };
    assert.deepEqual(client.take('INBOX', since, { base: undefined, whole: false }), since);
    assert.equal(client.baseFor('INBOX'), base);
    assert.deepEqual(client.take('INBOX', slow, wholeAsked(base)), b);
  });

  it('the hash is a safe integer and tells near-identical records apart', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 20000; i++) {
      const h = hash53(`[${i},"1700000000.M${i}P1.host",8,${i},1700000000000,512,[]]`);
      assert.ok(Number.isSafeInteger(h) && h >= 0);
      seen.add(h);
    }
    assert.equal(seen.size, 20000);
  });
});
