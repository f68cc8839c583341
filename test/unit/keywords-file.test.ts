import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  formatKeywordsFile,
  keywordLetter,
  letterIndex,
  parseKeywordsFile,
} from '../../src/storage/maildir/keywords-file.js';
import { MailferryError } from '../../src/model/errors.js';

const FILE = '/m/dovecot-keywords';

test('letters and indexes', () => {
  assert.equal(keywordLetter(0), 'a');
  assert.equal(keywordLetter(25), 'z');
  assert.throws(() => keywordLetter(26), RangeError);
  assert.throws(() => keywordLetter(-1), RangeError);
  assert.equal(letterIndex('a'), 0);
  assert.equal(letterIndex('z'), 25);
  for (const bad of ['A', 'S', '', 'ab', '{', '`']) assert.equal(letterIndex(bad), -1);
});

test('parses a Dovecot file with gaps', () => {
  const { keywords, warnings } = parseKeywordsFile('0 $Forwarded\n1 $Junk\n3 NonJunk\n', FILE);
  assert.deepEqual(keywords, ['$Forwarded', '$Junk', undefined, 'NonJunk']);
  assert.deepEqual(warnings, []);
  assert.equal(formatKeywordsFile(keywords), '0 $Forwarded\n1 $Junk\n3 NonJunk\n');
});

test('bad lines are warned about and skipped', () => {
  const text = [
    'customflags header', // no index
    'nospace',
    '26 TooFar',
    '-1 Neg',
    '2 ',
    '0 Work',
    '1 work',             // duplicate, case-insensitive
    '0 Home',             // same index: replaces
    '4 two words',
    '5 Partial',
  ].join('\n');
  const { keywords, warnings } = parseKeywordsFile(text, FILE);
  assert.deepEqual(keywords, ['Home', undefined, undefined, undefined, 'two words']);
  assert.equal(warnings.length, 8);
  for (const w of warnings) assert.ok(w.startsWith(`${FILE}: line `), w);
  assert.ok(warnings.at(-1)!.includes('line 10'));
});

test('empty file', () => {
  assert.deepEqual(parseKeywordsFile('', FILE), { keywords: [], warnings: [] });
  assert.equal(formatKeywordsFile([]), '');
});

test('format refuses what cannot be read back', () => {
  assert.throws(() => formatKeywordsFile(['a\nb']), MailferryError);
  assert.throws(() => formatKeywordsFile(['']), MailferryError);
  assert.throws(() => formatKeywordsFile(['X', 'x']), MailferryError);
  const tooMany: string[] = Array.from({ length: 27 }, (_, i) => `k${i}`);
  assert.throws(() => formatKeywordsFile(tooMany), MailferryError);
});

test('round trip', () => {
  const slot = fc.option(fc.stringMatching(/^[!-~][ -~]{0,15}$/), { nil: undefined });
  fc.assert(
    fc.property(fc.array(slot, { maxLength: 26 }), (raw) => {
      const seen = new Set<string>();
      const kws = raw.map((k) => (k === undefined || seen.has(k.toLowerCase()) ? undefined : (seen.add(k.toLowerCase()), k)));
      while (kws.length > 0 && kws[kws.length - 1] === undefined) kws.pop();
      const { keywords, warnings } = parseKeywordsFile(formatKeywordsFile(kws), FILE);
      assert.deepEqual(warnings, []);
      assert.deepEqual(keywords, kws);
    }),
  );
});
