import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMutf7, encodeMutf7 } from '../../src/model/mutf7.js';
import { MailferryError } from '../../src/model/errors.js';

const pairs: [string, string][] = [
  ['INBOX', 'INBOX'],
  ['&', '&-'],
  ['a&b', 'a&-b'],
  ['Entwürfe', 'Entw&APw-rfe'],
  ['Gelöschte Elemente', 'Gel&APY-schte Elemente'],
  ['~peter/mail/台北/日本語', '~peter/mail/&U,BTFw-/&ZeVnLIqe-'],
  ['日本語', '&ZeVnLIqe-'],
  ['😀', '&2D3eAA-'],
  ['a😀b', 'a&2D3eAA-b'],
  ['tab\there', 'tab&AAk-here'],
  ['del\x7f', 'del&AH8-'],
  ['&Ä&', '&-&AMQ-&-'],
  ['&&x&&', '&-&-x&-&-'],
  ['tietä&jä&', 'tiet&AOQ-&-j&AOQ-&-'],
  ['', ''],
];

test('known encodings', () => {
  for (const [plain, enc] of pairs) {
    assert.equal(encodeMutf7(plain), enc, plain);
    assert.equal(decodeMutf7(enc), plain, enc);
  }
});

test('rejects invalid input with a data error', () => {
  const bad = [
    '&',            // unterminated
    'a&ZeVn',       // unterminated run
    '&Zé-',         // raw non-ASCII
    'Entwürfe',     // raw non-ASCII outside a run
    '&A-',          // truncated base64
    '&AP-',         // odd byte count
    '&AGE-',        // encoded printable ASCII 'a'
    '&AAA-',        // encoded NUL
    '&2D0-',        // lone high surrogate
    '&3gA-',        // lone low surrogate
    '&APw-&APw-',   // two runs back to back
    '&AP*-',        // bad base64 char
    'a\tb',         // raw control character
    '&Jjo',         // unterminated
    '&Jjo!',        // bad terminator
    '&U,BTFw-&ZeVnLIqe-', // unnecessary shift
  ];
  for (const s of bad) {
    assert.throws(() => decodeMutf7(s), (e: unknown) => e instanceof MailferryError && e.kind === 'data', s);
  }
});

test('adjacent runs separated by &- are fine', () => {
  assert.equal(decodeMutf7('&APw-&-'), 'ü&');
});

test('encoder refuses lone surrogates and NUL', () => {
  assert.throws(() => encodeMutf7('a\ud800b'), MailferryError);
  assert.throws(() => encodeMutf7('\udc00'), MailferryError);
  assert.throws(() => encodeMutf7('a\0'), MailferryError);
});

const validString = fc
  .string({ unit: 'binary' })
  .filter((s) => !/\p{Cs}|\0/u.test(s));

test('round trip over arbitrary Unicode strings', () => {
  fc.assert(
    fc.property(validString, (s) => {
      const enc = encodeMutf7(s);
      assert.match(enc, /^[\x20-\x7e]*$/);
      assert.equal(decodeMutf7(enc), s);
    }),
    { numRuns: 2000 },
  );
});

test('encoding is canonical: re-encoding a decoded name gives it back', () => {
  fc.assert(
    fc.property(validString, (s) => {
      const enc = encodeMutf7(s);
      assert.equal(encodeMutf7(decodeMutf7(enc)), enc);
    }),
  );
});
