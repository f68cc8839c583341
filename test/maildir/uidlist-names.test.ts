/**
 * uidlistNames answers from the raw bytes what the full parser would: a name is listed when a
 * complete line names it, never because a G value or the unterminated tail holds the same text.
 * Both of its ways (searching the bytes, then a set once many lookups came) must agree.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import fc from 'fast-check';
import { uidlistNames } from '../../src/storage/maildir/uidlist-lines.js';
import { parseUidlist } from '../../src/storage/maildir/uidlist.js';

function withUidlist<T>(text: string, fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-uidlist-names-'));
  try {
    writeFileSync(join(dir, 'dovecot-uidlist'), text);
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

it('a name is listed only by a complete line, not by a G value, a longer name or the unterminated tail', () => {
  const text = '3 V1 N9 G0123456789abcdef0123456789abcdef\n1 :one\n2 Gtwo-guid :two,S=5\n3 W10 :three\n4 :tail';
  withUidlist(text, (dir) => {
    const has = uidlistNames(dir);
    assert.deepEqual(['one', 'two,S=5', 'three', 'two-guid', 'two', 'tail', 'on', 'ne'].map(has), [true, true, true, false, false, false, false, false]);
  });
  withUidlist('1 12 30\n10 old-style\n11  spaced\n', (dir) => {
    const has = uidlistNames(dir);
    assert.deepEqual(['old-style', 'spaced', 'style'].map(has), [true, true, false]);
  });
  assert.equal(uidlistNames(join(tmpdir(), 'mailferry-no-such-dir'))('x'), false);
});

it('agrees with the full parser on random uidlists, by byte search and by set', () => {
  const name = fc.stringMatching(/^[A-Za-z0-9.,=_-]{1,12}$/);
  fc.assert(
    fc.property(fc.uniqueArray(name, { maxLength: 30 }), fc.array(name, { maxLength: 20 }), fc.boolean(), (listed, others, cut) => {
      const lines = listed.map((n, i) => (i % 3 === 1 ? `${i + 1} G${others[i % Math.max(1, others.length)] ?? 'g'} :${n}` : `${i + 1} :${n}`));
      const text = `3 V1 N${listed.length + 1}\n${lines.join('\n')}${cut || lines.length === 0 ? '' : '\n'}`;
      const truth = new Set(parseUidlist(text, 'dovecot-uidlist').uidlist.entries.map((e) => e.basename));
      withUidlist(text, (dir) => {
        const has = uidlistNames(dir);
        const asked = [...listed, ...others];
        // Enough lookups to go past the byte search into the set.
        for (let k = 0; asked.length > 0 && k < 40; k++) {
          const n = asked[k % asked.length]!;
          assert.equal(has(n), truth.has(n), `${n} (lookup ${k}) in ${JSON.stringify(text)}`);
        }
      });
    }),
    { numRuns: 150 },
  );
});
