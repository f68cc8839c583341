import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MboxrdUnquoter } from '../../src/storage/mbox/mboxrd-unquote.js';

function unquote(chunks: Buffer[]): string {
  const u = new MboxrdUnquoter();
  return Buffer.concat([...chunks.flatMap((c) => u.push(c)), ...u.end()]).toString('latin1');
}

describe('mboxrd unquoting', () => {
  it('removes one > from >From lines only', () => {
    assert.equal(unquote([Buffer.from('>From a\n>>From b\n> From c\n>Fromage\nx >From d\n>From')]), 'From a\n>From b\n> From c\n>Fromage\nx >From d\n>From');
  });

  it('gives the same result however the input is split', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('>', 'From ', 'F', '\n', 'x', '\r\n', '>>From '), { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 6 }), (parts, cuts) => {
        const text = Buffer.from(parts.join(''), 'latin1');
        const whole = unquote([text]);
        const points = [...new Set(cuts.map((c) => (text.length ? c % text.length : 0)))].sort((a, b) => a - b);
        const pieces: Buffer[] = [];
        let prev = 0;
        for (const p of points) {
          pieces.push(text.subarray(prev, p));
          prev = p;
        }
        pieces.push(text.subarray(prev));
        assert.equal(unquote(pieces), whole);
      }),
    );
  });
});
