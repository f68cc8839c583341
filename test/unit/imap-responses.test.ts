/**
 * What a server sends in LIST, STATUS, APPENDUID and UID sets is read by hand from imapflow's
 * parse tree: whatever arrives, these decoders give a value or a MailferryError, never throw
 * anything else, and never build more than they were told to expect.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MailferryError } from '../../src/model/errors.js';
import { appendUidsOf } from '../../src/storage/imap/imap-append.js';
import { parseListLine, parseStatusLine } from '../../src/storage/imap/list-response.js';
import { formatUidSet, MAX_UIDS_IN_SET, parseUidSet } from '../../src/storage/imap/uid-set.js';
import type { RawUntagged } from '../../src/storage/imap/imap-session.js';

/** Any shape of parse tree a confused or hostile server could produce. */
const attribute = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: 'small' },
    fc.record({ type: fc.constantFrom('ATOM', 'STRING', 'LITERAL', 'NUMBER'), value: fc.oneof(fc.string(), fc.integer(), fc.constant(null)) }, { noNullPrototype: true }),
    fc.array(tie('node'), { maxLength: 6 }),
    fc.constant(undefined),
    fc.constant(null),
  ),
})).node;

test('property: LIST and STATUS lines of any shape decode to strings and whole numbers', () => {
  fc.assert(
    fc.property(fc.array(attribute, { maxLength: 5 }), (attributes) => {
      const u = { attributes } as unknown as RawUntagged;
      const line = parseListLine(u);
      assert.ok(line.flags.every((f) => typeof f === 'string'));
      assert.equal(typeof line.delimiter, 'string');
      assert.equal(typeof line.path, 'string');
      const { status } = parseStatusLine(u);
      for (const n of [status.messages, status.uidNext, status.uidValidity]) assert.ok(n === undefined || Number.isSafeInteger(n));
    }),
  );
});

test('a STATUS value that is not a number is left out', () => {
  const u = { attributes: [{ value: 'INBOX' }, [{ value: 'MESSAGES' }, { value: '12x' }, { value: 'UIDNEXT' }, { value: '7' }]] } as unknown as RawUntagged;
  assert.deepEqual(parseStatusLine(u), { path: 'INBOX', status: { uidNext: 7 } });
});

test('property: a UID set gives back the UIDs it was made of, and junk is skipped or refused', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 100_000 }), { maxLength: 200 }), (uids) => {
      assert.deepEqual(parseUidSet(formatUidSet(uids)), [...uids].sort((a, b) => a - b));
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (text) => {
      try {
        const got = parseUidSet(text, 10_000);
        assert.ok(got.length <= 10_000 && got.every((u) => Number.isSafeInteger(u) && u >= 0));
      } catch (err) {
        assert.ok(err instanceof MailferryError, String(err));
      }
    }),
  );
});

test('a UID set naming billions of UIDs is refused instead of built', () => {
  assert.throws(() => parseUidSet('1:4294967295'), (err: unknown) => err instanceof MailferryError && /more than/.test(err.message));
  assert.ok(MAX_UIDS_IN_SET < 4294967295);
});

test('APPENDUID: only a code of the expected shape and length is believed', () => {
  const code = (set: string) => [{ value: 'APPENDUID' }, { value: '1700000000' }, { value: set }];
  assert.deepEqual(appendUidsOf(code('5:7'), 3), [5, 6, 7]);
  assert.equal(appendUidsOf(code('5:7'), 2), undefined, 'a set of another length');
  assert.equal(appendUidsOf(code('1:4294967295'), 3), undefined, 'a huge set is not built');
  assert.equal(appendUidsOf([{ value: 'COPYUID' }], 1), undefined);
  fc.assert(
    fc.property(attribute, fc.integer({ min: 0, max: 64 }), (section, count) => {
      const got = appendUidsOf(section, count);
      assert.ok(got === undefined || got.length === count);
    }),
  );
});
