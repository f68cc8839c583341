import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { MailferryError } from '../../src/model/errors.js';
import { formatInternalDate, parseInternalDate } from '../../src/storage/imap/imap-fetch.js';
import { fromLetters, keywordFilter, splitServerFlags, toLetters } from '../../src/storage/imap/imap-flags.js';
import { ImapNames } from '../../src/storage/imap/imap-names.js';
import { countCrlf, CrlfToLf, crlfToLf, crlfToLfInPlace, lfToCrlf } from '../../src/storage/imap/line-ends.js';
import { formatUidSet, parseUidSet } from '../../src/storage/imap/uid-set.js';
import { corpusMessages } from '../support/corpus.js';

test('LF -> CRLF -> LF gives every LF-only corpus message back byte for byte', () => {
  let checked = 0;
  for (const m of corpusMessages(1500)) {
    if (m.includes('\r\n')) continue;
    const wire = lfToCrlf(m);
    assert.ok(!/(^|[^\r])\n/.test(wire.toString('latin1')), 'no bare LF on the wire');
    assert.ok(crlfToLf(wire).equals(m));
    checked++;
  }
  assert.ok(checked > 1400);
});

test('line-end conversions: lone CRs are kept, existing CRLF is not doubled', () => {
  assert.equal(lfToCrlf(Buffer.from('a\nb\r\nc\rd\n')).toString(), 'a\r\nb\r\nc\rd\r\n');
  assert.equal(crlfToLf(Buffer.from('a\r\nb\rc\r\n\r\n')).toString(), 'a\nb\rc\n\n');
  assert.equal(lfToCrlf(Buffer.from('\n')).toString(), '\r\n');
  assert.equal(lfToCrlf(Buffer.alloc(0)).length, 0);
});

test('CRLF -> LF in place and by copy equal a plain string replace; the copy leaves its input alone', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom('a', '\r', '\n', '\r\n', '\r\r\n', 'xyz'), { maxLength: 80 }), fc.nat(4), (parts, offset) => {
      const text = parts.join('');
      const want = Buffer.from(text.replaceAll('\r\n', '\n'), 'latin1');
      const input = Buffer.from(text, 'latin1');
      assert.deepEqual(crlfToLf(input), want);
      assert.deepEqual(input, Buffer.from(text, 'latin1'));
      assert.equal(input.length - countCrlf(input), want.length);
      // A view into a larger buffer, as a parser hands out: the bytes around it are not touched.
      const outer = Buffer.concat([Buffer.alloc(offset, 0x41), input, Buffer.from('\r\nZ')]);
      const view = outer.subarray(offset, offset + input.length);
      assert.deepEqual(crlfToLfInPlace(view), want);
      assert.equal(outer.subarray(offset + input.length).toString('latin1'), '\r\nZ');
      assert.equal(outer.subarray(0, offset).toString('latin1'), 'A'.repeat(offset));
    }),
  );
});

test('the streaming CRLF -> LF equals the buffer one however the input is cut', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.constantFrom('a', '\r', '\n', '\r\n', 'xyz'), { maxLength: 60 }), fc.array(fc.nat(20), { maxLength: 8 }), async (parts, cuts) => {
      const input = Buffer.from(parts.join(''));
      const chunks: Buffer[] = [];
      let at = 0;
      for (const c of cuts) {
        chunks.push(input.subarray(at, Math.min(input.length, at + c)));
        at = Math.min(input.length, at + c);
      }
      chunks.push(input.subarray(at));
      const out: Buffer[] = [];
      for await (const b of Readable.from(chunks, { objectMode: false }).pipe(new CrlfToLf())) out.push(b as Buffer);
      assert.deepEqual(Buffer.concat(out), crlfToLf(input));
    }),
  );
});

test('UID sets round-trip and compress runs', () => {
  assert.equal(formatUidSet([5, 1, 2, 3, 9, 10, 3]), '1:3,5,9:10');
  assert.deepEqual(parseUidSet('1:3,5,10:9'), [1, 2, 3, 5, 9, 10]);
  fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 500 }), { maxLength: 80 }), (uids) => {
    assert.deepEqual(parseUidSet(formatUidSet(uids)), [...uids].sort((a, b) => a - b));
  }));
});

test('INTERNALDATE: zones and space-padded days', () => {
  assert.equal(parseInternalDate(' 3-Feb-2001 04:05:06 +0000'), Date.UTC(2001, 1, 3, 4, 5, 6));
  assert.equal(parseInternalDate('24-Nov-2026 21:13:09 +0200'), Date.UTC(2026, 10, 24, 19, 13, 9));
  assert.equal(parseInternalDate('01-Jan-2024 00:30:00 -0130'), Date.UTC(2024, 0, 1, 2, 0, 0));
  fc.assert(fc.property(fc.integer({ min: 0, max: 4_000_000_000 }), (s) => {
    assert.equal(parseInternalDate(formatInternalDate(s * 1000)), s * 1000);
  }));
});

test('flags: system flags by letter, keywords sorted, \\Recent and unknown system flags dropped', () => {
  assert.deepEqual(splitServerFlags(['\\Seen', '\\Recent', 'work', '$Label1', '\\flagged', '\\X-Odd']), { letters: 'FS', keywords: ['$Label1', 'work'] });
  assert.deepEqual(fromLetters(toLetters(['\\Seen', '\\Draft', '\\Answered'])), ['\\Answered', '\\Seen', '\\Draft']);
  assert.equal(keywordFilter(['\\Seen', '\\*'])('anything'), true);
  assert.equal(keywordFilter(['\\Seen', 'known'])('Known'), true);
  assert.equal(keywordFilter(['\\Seen', 'known'])('other'), false);
});

test('names: namespace prefix, delimiter, INBOX, and parts holding the delimiter refused', () => {
  const dovecot = new ImapNames('', '.', 'imap://a@h:143');
  assert.equal(dovecot.toPath(['Work', 'Q3']), 'Work.Q3');
  assert.equal(dovecot.toPath(['inbox']), 'INBOX');
  assert.deepEqual(dovecot.fromPath('Work.Q3'), ['Work', 'Q3']);
  assert.throws(() => dovecot.toPath(['v1.2']), (e: unknown) => e instanceof MailferryError && e.kind === 'data' && /v1\.2.*delimiter '\.'/.test(e.message));
  const courier = new ImapNames('INBOX.', '.', 'imap://a@h:143');
  assert.equal(courier.toPath(['Sent Items']), 'INBOX.Sent Items');
  assert.equal(courier.toPath(['INBOX']), 'INBOX');
  assert.deepEqual(courier.fromPath('INBOX.Sent Items'), ['Sent Items']);
  assert.deepEqual(courier.fromPath('INBOX'), ['INBOX']);
  assert.equal(courier.fromPath('#shared.x'), undefined);
  const slash = new ImapNames('', '/', 'imap://a@h:143');
  assert.equal(slash.toPath(['A & B', 'x.y']), 'A & B/x.y');
  assert.deepEqual(slash.fromPath('A & B/x.y'), ['A & B', 'x.y']);
});
