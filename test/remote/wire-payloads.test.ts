/**
 * Every payload decoder against what a peer may send: valid values round-trip (long arrays in
 * parts), and anything else (wrong types, out-of-range numbers, truncated JSON, bad mailbox
 * names, too many items) is a ProtocolError naming the field, never another kind of throw.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MailferryError } from '../../src/model/errors.js';
import { ProtocolError } from '../../src/remote/protocol-error.js';
import { decodeError, encodeError } from '../../src/remote/wire-errors.js';
import { encodeMessage, MAX_ITEMS, MessageAssembler, parseObject } from '../../src/remote/wire-message.js';
import { OPS, saveItem, encodeSaveItem, type OpName, type WireSpec } from '../../src/remote/wire-ops.js';
import { SYSTEM_FLAGS, type MessageMeta, type SystemFlag } from '../../src/storage/store.js';

const level = fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' }).filter((s) => s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\u0000'));
const nameArb = fc.array(level, { minLength: 1, maxLength: 4 });
const guid32 = fc.stringMatching(/^[0-9a-f]{32}$/);
const msgGuid = fc.stringMatching(/^[A-Za-z0-9.,:_=-]{1,60}$/).filter((s) => s !== '.' && s !== '..');
const flagsArb = fc.subarray([...SYSTEM_FLAGS]) as fc.Arbitrary<SystemFlag[]>;
const keywordsArb = fc.array(fc.string({ minLength: 1, maxLength: 16 }).filter((s) => !/[\u0000\r\n]/.test(s)), { maxLength: 5 });
const u32 = fc.integer({ min: 1, max: 0xffffffff });
const safe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

const plain = { noNullPrototype: true } as const;

const metaArb: fc.Arbitrary<MessageMeta> = fc.record({
  uid: u32,
  guid: msgGuid,
  flags: flagsArb,
  keywords: keywordsArb,
  modseq: safe,
  receivedDate: fc.integer({ min: -1e13, max: 1e13 }),
  size: safe,
}, plain);

/** Sends a value as the frames it would travel in and decodes it as the peer would. */
function travel<T>(spec: WireSpec<T>, value: T, head: Record<string, unknown> = {}): T {
  const { parts, final } = encodeMessage(spec, value, head);
  const asm = new MessageAssembler(spec.chunked, 'test');
  for (const p of parts) asm.addPart(parseObject(p, 'part'));
  return asm.finish(spec, parseObject(final, 'final'));
}

/** Decodes an arbitrary object as `spec` would; returns the error when it refuses. */
function decodeAny(spec: WireSpec<unknown>, o: unknown): unknown {
  try {
    const asm = new MessageAssembler(spec.chunked, 'test');
    return asm.finish(spec, parseObject(Buffer.from(JSON.stringify(o) ?? 'null'), 'final'));
  } catch (err) {
    return err;
  }
}

function isCleanRefusal(v: unknown): boolean {
  return !(v instanceof Error) || v instanceof ProtocolError;
}

/** `o` with the value at one path (chosen by `pick`) replaced. */
function mutate(o: unknown, pick: number, replacement: unknown): unknown {
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]) => {
    paths.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(o, []);
  const path = paths[pick % paths.length]!;
  if (path.length === 0) return replacement;
  const copy = structuredClone(o) as Record<string | number, unknown>;
  let at = copy;
  for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
  at[path.at(-1)!] = replacement;
  return copy;
}

const hostileValue = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom(-1, 0, 2 ** 32, 2 ** 53, 1.5, '', '..', '.', 'a/b', '\u0000', null, [], {}, ['..'], ['a', ''], [['x']], 'x'.repeat(5000)),
);

describe('wire payloads', () => {
  it('getMessages replies round-trip, whatever their length', () => {
    fc.assert(
      fc.property(fc.array(metaArb, { maxLength: 40 }), fc.array(fc.record({ uid: u32, guid: msgGuid, modseq: safe }, plain), { maxLength: 10 }), (messages, expunged) => {
        const value = { uidValidity: 7, uidNext: 100, highestModseq: 12345, incremental: true, messages, expunged };
        assert.deepEqual(travel(OPS.getMessages.reply, value), value);
      }),
      { numRuns: 200 },
    );
  });

  it('the messages of some UIDs and GUIDs, asked for and answered, round-trip', () => {
    fc.assert(
      fc.property(nameArb, fc.array(u32, { maxLength: 30 }), fc.array(msgGuid, { maxLength: 30 }), fc.array(metaArb, { maxLength: 40 }), (name, uids, guids, messages) => {
        const asked = { name, uids, guids };
        assert.deepEqual(travel(OPS.getMessagesOf.request, asked, { op: 'getMessagesOf' }), asked);
        const answer = { uidValidity: 9, uidNext: 2 ** 32, highestModseq: 2 ** 40, messages };
        assert.deepEqual(travel(OPS.getMessagesOf.reply, answer), answer);
      }),
      { numRuns: 200 },
    );
  });

  it('a mailbox of 20000 messages travels in parts, none near the frame limit', () => {
    const messages: MessageMeta[] = Array.from({ length: 20000 }, (_, i) => ({
      uid: i + 1,
      guid: `1700000000.M${i}P1.host`,
      flags: i % 2 ? ['\\Seen'] : [],
      keywords: i % 3 ? [] : ['$Label1'],
      modseq: 1e12 + i,
      receivedDate: 1.7e12 + i,
      size: 1000 + i,
    }));
    const value = { uidValidity: 1, uidNext: 20001, highestModseq: 2e12, incremental: false, messages, expunged: [] };
    const { parts, final } = encodeMessage(OPS.getMessages.reply, value);
    assert.ok(parts.length >= 4, `${parts.length} parts`);
    for (const p of parts) assert.ok(p.length < 300 * 1024);
    assert.ok(final.length < 1024);
    assert.deepEqual(travel(OPS.getMessages.reply, value), value);
  });

  it('listMailboxes, flag updates, pair state and save items round-trip', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ name: nameArb, guid: guid32, uidValidity: u32, uidNext: u32, highestModseq: safe, messages: fc.nat({ max: 1e6 }), specialUse: fc.constantFrom('', '\\Sent').map((s) => (s ? [s] : [])), subscribed: fc.boolean() }, plain), { maxLength: 8 }),
        fc.array(fc.record({ uid: u32, flags: flagsArb, keywords: keywordsArb }, plain), { maxLength: 8 }),
        fc.array(fc.tuple(guid32, fc.record({ uidValidity: u32, uidNext: u32, highestModseq: safe, peerUidValidity: u32, peerUidNext: u32, peerHighestModseq: safe }, plain)), { maxLength: 5 }),
        (mailboxes, updates, state) => {
          const list = { separator: '.', mailboxes, changes: [{ type: 'rename' as const, guid: 'a'.repeat(32), name: ['New'], oldName: ['Old'], timestamp: 1700000000 }] };
          assert.deepEqual(travel(OPS.listMailboxes.reply, list), list);
          const flagReq = { name: ['INBOX'], updates };
          assert.deepEqual(travel(OPS.updateFlags.request, flagReq, { op: 'updateFlags' }), flagReq);
          const pair = { peer: 'abc:backup', state };
          assert.deepEqual(travel(OPS.setPairState.request, pair, { op: 'setPairState' }), pair);
        },
      ),
      { numRuns: 100 },
    );
    const item = { uid: 5, guid: 'g1', flags: ['\\Seen'] as SystemFlag[], keywords: ['k'], receivedDate: 0, copyOf: 3, stream: 9 };
    assert.deepEqual(saveItem(encodeSaveItem(item), 'item'), item);
  });

  it('random objects given to any decoder: a value or a ProtocolError', () => {
    const specs = (Object.keys(OPS) as OpName[]).flatMap((op) => [OPS[op].request, OPS[op].reply]) as WireSpec<unknown>[];
    fc.assert(
      fc.property(fc.constantFrom(...specs), fc.dictionary(fc.constantFrom('name', 'uid', 'uids', 'messages', 'status', 'from', 'to', 'state', 'entries', 'peer', 'guid', 'since', 'credit', 'names', 'optional'), hostileValue), (spec, o) => {
        assert.ok(isCleanRefusal(decodeAny(spec, o)));
      }),
      { numRuns: 3000 },
    );
  });

  it('valid replies with one field replaced: a value or a ProtocolError naming a field', () => {
    fc.assert(
      fc.property(fc.array(metaArb, { minLength: 1, maxLength: 5 }), fc.nat(), hostileValue, (messages, pick, replacement) => {
        const spec = OPS.getMessages.reply as WireSpec<unknown>;
        const wire = spec.encode({ uidValidity: 1, uidNext: 9, highestModseq: 1, incremental: true, messages, expunged: [] });
        const got = decodeAny(spec, mutate(wire, pick, replacement));
        assert.ok(isCleanRefusal(got), String(got));
        if (got instanceof ProtocolError) assert.match(got.message, /test|expected/);
      }),
      { numRuns: 2000 },
    );
  });

  it('mailbox names with empty, dot, dot-dot, slash or NUL levels are refused wherever a name goes', () => {
    const bad = fc.oneof(fc.constant(''), fc.constant('.'), fc.constant('..'), level.map((s) => `${s}/..`), level.map((s) => `${s}\u0000`));
    fc.assert(
      fc.property(nameArb, bad, fc.nat(), fc.constantFrom('createMailbox', 'deleteMailbox', 'renameMailbox', 'getMessages', 'openMessage', 'saveMessages'), (name, badLevel, at, op) => {
        const evil = [...name];
        evil.splice(at % (evil.length + 1), 0, badLevel);
        const o = { op, name: evil, from: evil, to: evil, uid: 1, credit: 0 };
        const got = decodeAny(OPS[op as OpName].request as WireSpec<unknown>, o);
        assert.ok(got instanceof ProtocolError, `accepted ${JSON.stringify(evil)}`);
      }),
      { numRuns: 1000 },
    );
    const reply = { mailboxes: [{ name: ['..', 'etc'], guid: 'a'.repeat(32), uidValidity: 1, uidNext: 1, highestModseq: 0, messages: 0, specialUse: [], subscribed: false }], changes: [], separator: '/' };
    assert.ok(decodeAny(OPS.listMailboxes.reply as WireSpec<unknown>, reply) instanceof ProtocolError);
  });

  it('truncated or non-JSON payloads are ProtocolErrors', () => {
    fc.assert(
      fc.property(fc.array(metaArb, { maxLength: 5 }), fc.nat(), (messages, cut) => {
        const { final } = encodeMessage(OPS.getMessages.reply, { uidValidity: 1, uidNext: 9, highestModseq: 1, incremental: true, messages, expunged: [] });
        const short = final.subarray(0, cut % final.length);
        assert.throws(() => parseObject(short, 'reply'), ProtocolError);
      }),
    );
  });

  it('more items than a message may hold are refused part by part', () => {
    const asm = new MessageAssembler(OPS.expunge.request.chunked, 'request expunge');
    const chunk = { f: 'uids', items: Array.from({ length: 400_000 }, (_, i) => i + 1) };
    assert.throws(() => {
      for (let i = 0; i * chunk.items.length <= MAX_ITEMS; i++) asm.addPart(chunk);
    }, (e: unknown) => e instanceof ProtocolError && /more than/.test(e.message));
    assert.throws(() => new MessageAssembler(OPS.expunge.request.chunked, 'x').addPart({ f: 'messages', items: [] }), ProtocolError);
  });

  it('errors keep their kind across the wire; anything else in an error frame is still a clean error', () => {
    const perm = decodeError(encodeError(new MailferryError('permission', '/srv/mail: permission denied')), 'remote nas', 'reply');
    assert.equal(perm.exitCode, 77);
    assert.equal(perm.message, 'remote nas: /srv/mail: permission denied');
    assert.equal(decodeError(encodeError(new TypeError('boom')), 'r', 'x').exitCode, 75);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          assert.ok(decodeError(Buffer.from(bytes), 'r', 'x') instanceof MailferryError);
        } catch (err) {
          assert.ok(err instanceof ProtocolError);
        }
      }),
    );
  });
});
