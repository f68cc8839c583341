import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EMPTY_MATCHING_HASH, headerHash, matchingHash } from '../../src/model/header-hash.js';

const m = (s: string) => matchingHash(Buffer.from(s, 'latin1'));
const BASE = 'From: a@x\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nSubject: hi\nMessage-ID: <1@x>\n\nbody\n';

test('what GNU mailutils does to a stored header does not change the matching hash', () => {
  // As stored (one space after the colon, runs of blanks one space, no trailing blanks, unfolded)
  // and as HEADER.FIELDS answers it (names upper-cased).
  const sent = 'Subject: x\nmessage-id:   <1@x>  \nDate:\tMon,  1 Jan 2024\n\t10:00:00 +0000\n\n';
  const stored = 'Subject: x\r\nmessage-id: <1@x>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n';
  const fields = 'MESSAGE-ID: <1@x>\r\nDATE: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n';
  assert.equal(m(sent), m(stored));
  assert.equal(m(sent), m(fields));
  assert.notEqual(headerHash(Buffer.from(sent)), headerHash(Buffer.from(fields)), 'the v3 hash does change');
});

test('the v3 header hash is what it always was: indexes keep it', () => {
  assert.equal(headerHash(Buffer.from(BASE)), 'dec1bbf7f7c436ba11d3154f7d685730');
});

test('only the values of Date and Message-ID count', () => {
  assert.equal(m(BASE), m(BASE.replace('Subject: hi', 'Subject: changed').replace('body', 'other')));
  assert.notEqual(m(BASE), m(BASE.replace('<1@x>', '<2@x>')));
  assert.notEqual(m(BASE), m(BASE.replace('10:00:00', '10:00:01')));
  assert.notEqual(m('X-Other: 1\n\tDate: x\n\n'), m('Date: x\n\n'), 'a folded line of another header is not a Date');
  assert.equal(m('Subject: a\n\nbody'), EMPTY_MATCHING_HASH);
  assert.match(m(BASE), /^[0-9a-f]{32}$/);
});

const blanks = fc.array(fc.constantFrom(' ', '\t'), { maxLength: 3 }).map((a) => a.join(''));
const token = fc.stringMatching(/^[A-Za-z0-9<>@.,:+-]{1,8}$/);

test('property: blanks, folding, line ends, name case and field order never change the matching hash', () => {
  fc.assert(
    fc.property(fc.array(token, { minLength: 1, maxLength: 5 }), fc.array(token, { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(blanks, fc.boolean()), { minLength: 8, maxLength: 8 }), fc.boolean(), fc.boolean(), fc.boolean(), (date, id, gaps, crlf, upper, swap) => {
      const plain = [`Date: ${date.join(' ')}`, `Message-ID: ${id.join(' ')}`];
      // Between the words: any blanks, or a fold (a line break then at least one blank).
      const spaced = (name: string, words: string[]) =>
        `${upper ? name.toUpperCase() : name.toLowerCase()}:${gaps[0]![0]}${words.map((w, i) => (i === 0 ? w : `${gaps[i % 8]![1] ? `\n${gaps[i % 8]![0] || ' '}` : gaps[i % 8]![0] || ' '}${w}`)).join('')}${gaps[7]![0]}`;
      const fields = [spaced('Date', date), spaced('Message-ID', id)];
      if (swap) fields.reverse();
      const rewritten = `Subject: s\n${fields.join('\nX-Mid: 1\n')}\n\n`;
      assert.equal(m(rewritten.replace(/\n/g, crlf ? '\r\n' : '\n')), m(`${plain.join('\n')}\n\n`));
    }),
  );
});
