import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FLAG_LETTERS,
  flagsToLetters,
  formatMaildirFilename,
  hasKeywordLetters,
  generateBasename,
  isValidBasename,
  lettersToFlags,
  parseMaildirFilename,
  vsizeOf,
  withSizes,
} from '../../src/storage/maildir/filename.js';

test('parses a Dovecot name with sizes and flags', () => {
  assert.deepEqual(parseMaildirFilename('1700000000.M123P456.host,S=1234,W=1260:2,FS'), {
    basename: '1700000000.M123P456.host,S=1234,W=1260',
    size: 1234,
    vsize: 1260,
    info: '2,FS',
    flagLetters: 'FS',
  });
});

test('names in new/ have no info', () => {
  assert.deepEqual(parseMaildirFilename('1700000000.M1P2.host,S=10'), {
    basename: '1700000000.M1P2.host,S=10',
    size: 10,
    flagLetters: '',
  });
  assert.deepEqual(parseMaildirFilename('1700000000.M1P2.host:2,'), {
    basename: '1700000000.M1P2.host',
    info: '2,',
    flagLetters: '',
  });
});

test('flag letters are sorted, deduplicated and stop at a second flag set', () => {
  assert.equal(parseMaildirFilename('x:2,TSbaRSP').flagLetters, 'PRSTab');
  assert.equal(parseMaildirFilename('x:2,SF,XYZ').flagLetters, 'FS');
  assert.equal(parseMaildirFilename('x:2,SF,XYZ').info, '2,SF,XYZ');
});

test('garbage names never throw', () => {
  assert.deepEqual(parseMaildirFilename('foo'), { basename: 'foo', flagLetters: '' });
  assert.deepEqual(parseMaildirFilename('a:b'), { basename: 'a', info: 'b', flagLetters: '' });
  assert.deepEqual(parseMaildirFilename(''), { basename: '', flagLetters: '' });
  assert.deepEqual(parseMaildirFilename(':'), { basename: '', info: '', flagLetters: '' });
  assert.deepEqual(parseMaildirFilename('x:1,S'), { basename: 'x', info: '1,S', flagLetters: '' });
  // Flags come from after the last ':', the identity ends at the first, as in Dovecot.
  assert.deepEqual(parseMaildirFilename('a:b:2,S'), { basename: 'a', info: 'b:2,S', flagLetters: 'S' });
  // Size fields must be digits followed by ',' or the end of the base name.
  assert.equal(parseMaildirFilename('x,S=12abc').size, undefined);
  assert.equal(parseMaildirFilename('x,S=,W=3').size, undefined);
  assert.equal(parseMaildirFilename('x,S=,W=3').vsize, 3);
  assert.equal(parseMaildirFilename('x,S=99999999999999999999').size, undefined);
  fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => void parseMaildirFilename(s)));
});

test('format writes :2, plus sorted unique letters', () => {
  assert.equal(formatMaildirFilename('base', 'SFS'), 'base:2,FS');
  assert.equal(formatMaildirFilename('base', ''), 'base:2,');
  assert.equal(formatMaildirFilename('base', 'caST'), 'base:2,STac');
});

test('format then parse round-trips', () => {
  const base = fc.stringMatching(/^[A-Za-z0-9.,=_-]{1,40}$/);
  const letters = fc.stringMatching(/^[A-Za-z]{0,10}$/);
  fc.assert(
    fc.property(base, letters, (b, l) => {
      const p = parseMaildirFilename(formatMaildirFilename(b, l));
      assert.equal(p.basename, b);
      assert.equal(p.flagLetters, [...new Set(l)].sort().join(''));
    }),
  );
});

test('generateBasename', () => {
  assert.equal(generateBasename(1700000000123.456, 456, 'mail.example.com', 7), '1700000000.M123456P456Q7.mail.example.com');
  assert.equal(generateBasename(1700000000000, 1, 'a/b:c', 0), '1700000000.M0P1Q0.a\\057b\\072c');
  const name = generateBasename(Date.now(), process.pid, 'h', 1);
  assert.ok(isValidBasename(name));
  assert.match(name, /^\d+\.M\d+P\d+Q1\.h$/);
});

test('withSizes', () => {
  const b = withSizes('1.M2P3Q4.host', 100, 104);
  assert.equal(b, '1.M2P3Q4.host,S=100,W=104');
  const p = parseMaildirFilename(formatMaildirFilename(b, 'S'));
  assert.equal(p.size, 100);
  assert.equal(p.vsize, 104);
  assert.throws(() => withSizes('x', -1, 0), RangeError);
});

test('flag mapping', () => {
  assert.deepEqual(FLAG_LETTERS, { '\\Draft': 'D', '\\Flagged': 'F', '\\Answered': 'R', '\\Seen': 'S', '\\Deleted': 'T' });
  assert.equal(flagsToLetters(['\\Seen', '\\Answered'], []), 'RS');
  assert.equal(flagsToLetters(['\\Seen', '\\Recent', '$Junk'], [2, 0, 30, -1], 'P'), 'PSac');
  // keep cannot re-add known flags or keywords, nor a flag-set separator.
  assert.equal(flagsToLetters([], [], 'PSa,Q'), 'PQ');
  assert.deepEqual(lettersToFlags('STaPc'), {
    flags: ['\\Seen', '\\Deleted'],
    keywordIndexes: [0, 2],
    unknown: 'P',
  });
  assert.deepEqual(lettersToFlags(''), { flags: [], keywordIndexes: [], unknown: '' });
});

test('letters -> flags -> letters round-trips', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[A-Za-z0-9]{0,20}$/), (l) => {
      const { flags, keywordIndexes, unknown } = lettersToFlags(l);
      assert.equal(flagsToLetters(flags, keywordIndexes, unknown), [...new Set(l)].sort().join(''));
    }),
  );
});

test('isValidBasename', () => {
  for (const ok of ['1700000000.M1P2.host', 'foo', 'a,S=1', 'x'.repeat(200)]) assert.ok(isValidBasename(ok), ok);
  for (const bad of ['', '.hidden', 'a/b', 'a:b', 'a\0b', 'a\nb', 'x'.repeat(201), 'é'.repeat(101)]) {
    assert.ok(!isValidBasename(bad), JSON.stringify(bad));
  }
});

test('vsizeOf counts bare LFs as CRLF', () => {
  assert.equal(vsizeOf(Buffer.from('')), 0);
  assert.equal(vsizeOf(Buffer.from('a\nb\n')), 6);
  assert.equal(vsizeOf(Buffer.from('a\r\nb\r\n')), 6);
  assert.equal(vsizeOf(Buffer.from('\n\r\n\r\r\n\n')), 9);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const buf = Buffer.from(bytes);
      const crlf = Buffer.from(buf.toString('latin1').replace(/(?<!\r)\n/g, '\r\n'), 'latin1');
      assert.equal(vsizeOf(buf), crlf.length);
      assert.equal(vsizeOf(crlf), crlf.length);
    }),
  );
});

test('property: hasKeywordLetters tells what the parsed flag letters say', () => {
  const piece = fc.constantFrom('1700000000.M1P2.host', ':', '2,', 'S', 'a', 'z', 'FS', 'ab', ',', 'X', '3,', '');
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 8 }), (parts) => {
      const name = parts.join('');
      assert.equal(hasKeywordLetters(name), /[a-z]/.test(parseMaildirFilename(name).flagLetters), JSON.stringify(name));
    }),
    { numRuns: 5000 },
  );
  assert.equal(hasKeywordLetters('1.M1.h:2,Sa'), true);
  assert.equal(hasKeywordLetters('1.M1.h:2,S,a'), false);
  assert.equal(hasKeywordLetters('1.M1.h'), false);
});
