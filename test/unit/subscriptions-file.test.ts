import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatSubscriptions, parseSubscriptions } from '../../src/storage/maildir/subscriptions-file.js';

const FILE = '/m/subscriptions';

test('version 1: one name per line split on the separator', () => {
  const text = 'INBOX\nArchive.2024\nEntw&APw-rfe\nOld.Trailing.\n';
  assert.deepEqual(parseSubscriptions(text, '.', FILE), [
    ['INBOX'],
    ['Archive', '2024'],
    ['Entw&APw-rfe'],
    ['Old', 'Trailing'],
  ]);
  assert.deepEqual(parseSubscriptions('a/b\nc', '/', FILE), [['a', 'b'], ['c']]);
});

test('version 2 as Dovecot writes it', () => {
  const text = 'V\t2\n\nINBOX\nArchive\t2024\nname.with.dots\tchild\n';
  const names = parseSubscriptions(text, '.', FILE);
  assert.deepEqual(names, [['INBOX'], ['Archive', '2024'], ['name.with.dots', 'child']]);
  assert.equal(formatSubscriptions(names), text);
});

test('version 2 tab escaping', () => {
  const names = [['tab\there', 'cr\rlf\n', 'esc\x01']];
  const text = formatSubscriptions(names);
  assert.equal(text, 'V\t2\n\ntab\x01there\tcr\x01rlf\x01n\tesc\x011\n');
  assert.deepEqual(parseSubscriptions(text, '.', FILE), names);
  // Unknown escape letters stand for themselves, as in Dovecot.
  assert.deepEqual(parseSubscriptions('V\t2\n\na\x01xb\n', '.', FILE), [['axb']]);
});

test('empty files, header only, CRLF and blank lines', () => {
  assert.deepEqual(parseSubscriptions('', '.', FILE), []);
  assert.deepEqual(parseSubscriptions('V\t2\n\n', '.', FILE), []);
  assert.equal(formatSubscriptions([]), 'V\t2\n\n');
  assert.deepEqual(parseSubscriptions('a\r\n\r\nb.c\r\n', '.', FILE), [['a'], ['b', 'c']]);
  // A truncated header is not version 2; it's read as version 1 like Dovecot does.
  assert.deepEqual(parseSubscriptions('V\t2\n', '.', FILE), [['V\t2']]);
});

test('round trip through version 2', () => {
  const part = fc.string({ unit: 'binary', minLength: 1, maxLength: 10 });
  fc.assert(
    fc.property(fc.array(fc.array(part, { minLength: 1, maxLength: 4 }), { maxLength: 10 }), (names) => {
      assert.deepEqual(parseSubscriptions(formatSubscriptions(names), '.', FILE), names);
    }),
  );
});
