import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { flagsFromStatus, formatBlock, needsEscape, parseImapBase, statusValue, xStatusValue } from '../../src/storage/mbox/mbox-headers.js';
import { analyzeHeader, escapeHeader } from '../../src/storage/mbox/message-header.js';
import { findHeaderEnd, storedHeader } from '../../src/storage/mbox/stored-message.js';
import { decodeLocation, encodeLocation } from '../../src/storage/mbox/message-location.js';
import { SYSTEM_FLAGS, type SystemFlag } from '../../src/storage/store.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('mbox metadata headers', () => {
  it('reads a header Dovecot wrote: flags, keywords, UID, X-IMAPbase, Content-Length, all hidden', () => {
    const raw = 'Date: Mon, 1 Jan 2024 10:00:00 +0000\nSubject: hi\nX-IMAPbase: 1795547640 0000000002 kw1 $Label2\nX-UID: 1\nStatus: R\nX-Keywords: kw1 $Label2                   \nContent-Length: 43\nX-Status: AFTD\n';
    const info = analyzeHeader(b(raw), true);
    assert.equal(info.served.toString(), 'Date: Mon, 1 Jan 2024 10:00:00 +0000\nSubject: hi\n');
    assert.equal(info.uid, 1);
    assert.deepEqual(info.imapBase, { uidValidity: 1795547640, lastUid: 2, keywords: ['kw1', '$Label2'] });
    assert.deepEqual(info.keywords, ['kw1', '$Label2']);
    assert.equal(info.contentLength, 43);
    assert.deepEqual(flagsFromStatus(info.status, info.xStatus).sort(), [...SYSTEM_FLAGS].sort());
    assert.equal(info.pseudo, false);
    assert.equal(info.metaStart, raw.indexOf('X-IMAPbase'));
  });

  it('recognizes the pseudo message and its X-IMAP', () => {
    const info = analyzeHeader(b("Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1234567 0000000041 kwA\nStatus: RO\n"), true);
    assert.equal(info.pseudo, true);
    assert.deepEqual(info.imap, { uidValidity: 1234567, lastUid: 41, keywords: ['kwA'] });
    assert.equal(analyzeHeader(b('Subject: other\n'), true).pseudo, false);
  });

  it('hides folded metadata headers with their continuation lines', () => {
    const info = analyzeHeader(b('A: 1\nX-Keywords: a\n b\nB: 2\n continued\n'), false);
    assert.equal(info.served.toString(), 'A: 1\nB: 2\n continued\n');
    assert.deepEqual(info.keywords, ['a']);
  });

  it('ignores malformed values as Dovecot does', () => {
    assert.equal(parseImapBase('abc 12'), undefined);
    assert.equal(parseImapBase('0 12'), undefined);
    assert.equal(analyzeHeader(b('X-UID: 12x\n'), false).uid, undefined);
  });

  it('flags survive Status/X-Status in both directions', () => {
    fc.assert(
      fc.property(fc.subarray([...SYSTEM_FLAGS]), (flags: SystemFlag[]) => {
        assert.deepEqual(flagsFromStatus(statusValue(flags), xStatusValue(flags)).sort(), [...flags].sort());
      }),
    );
  });

  it('a metadata block can be rewritten in the same length while its padding lasts', () => {
    const block = formatBlock({ uid: 7, flags: [], keywords: [], contentLength: 5 })!;
    const again = formatBlock({ uid: 7, flags: ['\\Seen', '\\Flagged'], keywords: ['work', 'home'], contentLength: 5 }, block.length)!;
    assert.equal(again.length, block.length);
    const info = analyzeHeader(b(again), false);
    assert.deepEqual(info.keywords, ['work', 'home']);
    assert.equal(formatBlock({ uid: 7, flags: [], keywords: ['x'.repeat(200)], contentLength: 5 }, block.length), undefined);
  });

  it('header lines that would be misread are escaped on save and restored on read, byte for byte', () => {
    const header = b('From sender Mon Jan  1 10:00:00 2024\nX-Keywords: spam, ham\nstatus: RO\nContent-Length: 12\nX-Mailferry-Orig-Odd: 1\nSubject: s\n');
    assert.ok(needsEscape('X-Status: A') && needsEscape('From x') && !needsEscape('Subject: From x'));
    const stored = storedHeader(header, { guid: 'g1' });
    const info = analyzeHeader(stored, false);
    assert.equal(info.served.toString('latin1'), header.toString('latin1'));
    assert.equal(info.guid, 'g1');
    assert.deepEqual(info.keywords, []);
    assert.equal(info.contentLength, undefined);
    fc.assert(
      fc.property(fc.array(fc.constantFrom('From a', 'X-UID: 3', 'Status: R', 'X-Mailferry-Orig-From b', 'x-mailferry-guid: q', 'A: b', ' cont', '>From c'), { maxLength: 8 }), (lines) => {
        const h = b(lines.map((l) => `${l}\n`).join(''));
        assert.equal(analyzeHeader(escapeHeader(h, needsEscape), false).served.toString('latin1'), h.toString('latin1'));
      }),
    );
  });

  it('finds the end of the header with LF and CRLF', () => {
    assert.deepEqual(findHeaderEnd(b('A: 1\n\nbody')), { headerEnd: 5, blank: 1 });
    assert.deepEqual(findHeaderEnd(b('A: 1\r\n\r\nbody')), { headerEnd: 6, blank: 2 });
    assert.deepEqual(findHeaderEnd(b('\nbody')), { headerEnd: 0, blank: 1 });
    assert.equal(findHeaderEnd(b('A: 1\nB: 2\n')), undefined);
  });

  it('message locations round-trip through the index column', () => {
    const loc = { from: 1, hdr: 40, hdrEnd: 90, body: 91, end: 300, virtualUid: true, unquote: false, bodyOnly: true, hash: 'ab'.repeat(16) };
    assert.deepEqual(decodeLocation(encodeLocation(loc)), loc);
    assert.equal(decodeLocation('garbage'), undefined);
  });
});
