import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatFromLine, parseFromLine, startsWithFrom } from '../../src/storage/mbox/from-line.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('mbox From lines', () => {
  it('accepts the separators of Dovecot, Postfix, UW-IMAP, mutt and Thunderbird', () => {
    const local = (y: number, mo: number, d: number, h: number, mi: number, s: number) => new Date(y, mo, d, h, mi, s).getTime();
    assert.equal(parseFromLine(b('From alice@vm  Tue Nov 24 19:14:00 2026')), local(2026, 10, 24, 19, 14, 0));
    assert.equal(parseFromLine(b('From MAILER-DAEMON Mon Jan  1 10:00:00 2024')), local(2024, 0, 1, 10, 0, 0));
    assert.equal(parseFromLine(b('From - Mon Jan 01 10:00:00 2024')), local(2024, 0, 1, 10, 0, 0));
    assert.equal(parseFromLine(b('From bob@example.org Fri Aug 23 10:56:01 2002 +0200')), Date.UTC(2002, 7, 23, 8, 56, 1));
    assert.equal(parseFromLine(b('From bob@example.org Fri Aug 23 10:56 2002')), local(2002, 7, 23, 10, 56, 0));
    assert.equal(parseFromLine(b('From "a b"@example.org Fri Aug 23 10:56:01 2002\r')), local(2002, 7, 23, 10, 56, 1));
  });

  it('rejects body lines that merely start with From', () => {
    for (const line of ['From here on it is easy', 'From: someone', 'From x Mon Jan 1 10:00:00', 'Fromage Mon Jan  1 10:00:00 2024', 'From x Mon Jan 32 10:00:00 2024', '>From x Mon Jan  1 10:00:00 2024']) {
      assert.equal(parseFromLine(b(line)), undefined, line);
    }
  });

  it('formats what it parses back to the same second', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1971, 0, 1), max: Date.UTC(2100, 0, 1) }), (ms) => {
        const line = formatFromLine('MAILER-DAEMON', ms);
        assert.ok(line.endsWith('\n') && startsWithFrom(b(line)));
        assert.equal(parseFromLine(b(line.slice(0, -1))), Math.floor(ms / 1000) * 1000);
      }),
    );
  });
});
