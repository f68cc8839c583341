import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatUidlist, nextUidOf, parseAppendedLines, parseEntry, parseEntryStrict, parseUidlist, uidlistWantsRewrite, type Uidlist } from '../../src/storage/maildir/uidlist.js';
import { MailferryError } from '../../src/model/errors.js';

const FILE = '/home/u/Maildir/dovecot-uidlist';
const GUID = '0123456789abcdef0123456789abcdef';

const isDataError = (e: unknown) => e instanceof MailferryError && e.kind === 'data' && e.message.includes(FILE);

test('parses a version 3 file as Dovecot writes it', () => {
  const text =
    `3 V1700000000 N5 G${GUID}\n` +
    '1 :1700000000.M1P1.host,S=10,W=12\n' +
    '2 GdsyncGuid P123 O1 :1700000001.M2P1.host\n' +
    '4 S100 W104 :1700000002.M3P1.host\n';
  const { uidlist, warnings } = parseUidlist(text, FILE);
  assert.deepEqual(warnings, []);
  assert.equal(uidlist.version, 3);
  assert.equal(uidlist.uidValidity, 1700000000);
  assert.equal(uidlist.nextUid, 5);
  assert.equal(uidlist.mailboxGuid, GUID);
  assert.deepEqual(uidlist.headerExtra, []);
  assert.deepEqual(uidlist.entries, [
    { uid: 1, basename: '1700000000.M1P1.host,S=10,W=12', extra: [] },
    { uid: 2, basename: '1700000001.M2P1.host', guid: 'dsyncGuid', extra: [['P', '123'], ['O', '1']] },
    { uid: 4, basename: '1700000002.M3P1.host', size: 100, vsize: 104, extra: [] },
  ]);
  assert.equal(formatUidlist(uidlist), text);
});

test('keeps unknown header fields and uppercase GUID is normalized', () => {
  const { uidlist } = parseUidlist(`3 V7 N1 G${GUID.toUpperCase()} Pformat X\n`, FILE);
  assert.equal(uidlist.mailboxGuid, GUID);
  assert.deepEqual(uidlist.headerExtra, [['P', 'format'], ['X', '']]);
  assert.equal(formatUidlist(uidlist), `3 V7 N1 G${GUID} Pformat X\n`);
});

test('parses version 1 and writes version 3', () => {
  const text = '1 1234 10\n3 1234.abc:2,S\n7 1235.def\n';
  const { uidlist, warnings } = parseUidlist(text, FILE);
  assert.deepEqual(warnings, []);
  assert.equal(uidlist.version, 1);
  assert.deepEqual(
    uidlist.entries.map((e) => [e.uid, e.basename]),
    [[3, '1234.abc'], [7, '1235.def']],
  );
  assert.equal(formatUidlist(uidlist), '3 V1234 N10\n3 :1234.abc\n7 :1235.def\n');
});

test('empty file or bad header throws a data error naming the file', () => {
  for (const text of ['', '\n', 'garbage\n', '3\n', '2 V1 N1\n', '3 V0 N1\n', '3 V1\n', '3 Vx N1\n', '3 V1 N1 Gnothex\n', '1 5\n', '3 V99999999999 N1\n']) {
    assert.throws(() => parseUidlist(text, FILE), isDataError, JSON.stringify(text));
  }
});

test('bad lines are skipped with warnings naming file and line', () => {
  const text =
    '3 V1 N3\n' +
    '1 :a\n' +
    'x :b\n' +          // 3: not a UID
    '1 :c\n' +          // 4: not increasing
    '0 :d\n' +          // 5: zero UID
    '5 Gx\n' +          // 6: no filename
    '6 :e/f\n' +        // 7: slash
    '7 lower :g\n' +    // 8: invalid key
    '8 :h\r\n' +        // CRLF tolerated
    '9 :partial';       // 10: unterminated
  const { uidlist, warnings } = parseUidlist(text, FILE);
  assert.deepEqual(uidlist.entries.map((e) => e.uid), [1, 8]);
  assert.equal(uidlist.entries[1]!.basename, 'h');
  assert.equal(warnings.length, 7);
  for (const [i, lineNo] of [3, 4, 5, 6, 7, 8, 10].entries()) {
    assert.ok(warnings[i]!.startsWith(`${FILE}: line ${lineNo}: `), warnings[i]);
  }
  assert.equal(nextUidOf(uidlist), 9);
});

test('a file listed twice keeps the later UID', () => {
  const { uidlist, warnings } = parseUidlist('3 V1 N9\n2 :a\n3 :b\n5 :a\n', FILE);
  assert.deepEqual(uidlist.entries.map((e) => [e.uid, e.basename]), [[3, 'b'], [5, 'a']]);
  assert.equal(warnings.length, 1);
});

test('nextUidOf takes the maximum of header and entries', () => {
  const base: Uidlist = { version: 3, uidValidity: 1, nextUid: 3, headerExtra: [], entries: [] };
  assert.equal(nextUidOf(base), 3);
  assert.equal(nextUidOf({ ...base, entries: [{ uid: 10, basename: 'x', extra: [] }] }), 11);
  assert.equal(nextUidOf({ ...base, nextUid: 20, entries: [{ uid: 10, basename: 'x', extra: [] }] }), 20);
});

test('format sorts entries, raises N past the last UID and cuts info off file names', () => {
  const u: Uidlist = {
    version: 3, uidValidity: 5, nextUid: 1, headerExtra: [],
    entries: [{ uid: 4, basename: 'b:2,S', extra: [] }, { uid: 2, basename: 'a', extra: [] }],
  };
  assert.equal(formatUidlist(u), '3 V5 N5\n2 :a\n4 :b\n');
});

test('format refuses values Dovecot could not read back', () => {
  const base: Uidlist = { version: 3, uidValidity: 5, nextUid: 1, headerExtra: [], entries: [] };
  const e = { uid: 1, basename: 'a', extra: [] as [string, string][] };
  assert.throws(() => formatUidlist({ ...base, uidValidity: 0 }), MailferryError);
  assert.throws(() => formatUidlist({ ...base, entries: [{ ...e, basename: 'a\nb' }] }), MailferryError);
  assert.throws(() => formatUidlist({ ...base, entries: [{ ...e, guid: 'has space' }] }), MailferryError);
  assert.throws(() => formatUidlist({ ...base, entries: [{ ...e, extra: [['p', 'x']] }] }), MailferryError);
  assert.throws(() => formatUidlist({ ...base, entries: [e, { ...e }] }), MailferryError);
  assert.throws(() => formatUidlist({ ...base, mailboxGuid: 'zz' }), MailferryError);
});

const token = fc.stringMatching(/^[A-Za-z0-9.,=_-]{1,12}$/);
const entryArb = fc.record({
  basename: fc.stringMatching(/^[A-Za-z0-9.,=_ -]{1,30}$/),
  guid: fc.option(token, { nil: undefined }),
  size: fc.option(fc.nat(), { nil: undefined }),
  vsize: fc.option(fc.nat(), { nil: undefined }),
  extra: fc.array(fc.tuple(fc.constantFrom('P', 'O', 'X'), token), { maxLength: 3 }),
}, { noNullPrototype: true });

test('format then parse round-trips', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 0xffffffff }),
      fc.integer({ min: 1, max: 0xffffffff }),
      fc.option(fc.stringMatching(/^[0-9a-f]{32}$/), { nil: undefined }),
      fc.uniqueArray(fc.integer({ min: 1, max: 0xfffffffe }), { maxLength: 20 }),
      fc.array(entryArb, { minLength: 20, maxLength: 20 }),
      (uidValidity, nextUid, mailboxGuid, uids, shapes) => {
        const sorted = [...uids].sort((a, b) => a - b);
        const seen = new Set<string>();
        const entries = sorted
          .map((uid, i) => {
            const s = shapes[i]!;
            const e: Uidlist['entries'][number] = { uid, basename: `${s.basename}.${uid}`, extra: s.extra };
            if (s.guid !== undefined) e.guid = s.guid;
            if (s.size !== undefined) e.size = s.size;
            if (s.vsize !== undefined) e.vsize = s.vsize;
            return e;
          })
          .filter((e) => !seen.has(e.basename) && seen.add(e.basename));
        const u: Uidlist = { version: 3, uidValidity, nextUid, headerExtra: [['P', 'x']], entries };
        if (mailboxGuid !== undefined) u.mailboxGuid = mailboxGuid;
        const want = Math.max(nextUid, (entries.at(-1)?.uid ?? 0) + 1);
        if (want > 0xffffffff) return;
        const { uidlist, warnings } = parseUidlist(formatUidlist(u), FILE);
        assert.deepEqual(warnings, []);
        assert.deepEqual(uidlist, { ...u, nextUid: want });
      },
    ),
  );
});

test('property: the quick path for plain entry lines agrees with the full grammar', () => {
  const piece = fc.constantFrom('1', '42', '0', '4294967295', '4294967296', '007', ' ', '  ', ':', ':2,S', 'G', 'Gabc', 'W12', '/', 'x', '1700000000.M1P2.host,S=5', '', '\r');
  const line = fc.array(piece, { maxLength: 8 }).map((parts) => parts.join(''));
  fc.assert(
    fc.property(line, fc.constantFrom(1 as const, 3 as const), (l, version) => {
      assert.deepEqual(parseEntry(l, version), parseEntryStrict(l, version));
    }),
    { numRuns: 5000 },
  );
});

test('property: lines read after a prefix agree with reading the whole text, or refuse a file listed twice', () => {
  const line = fc.record({
    gap: fc.integer({ min: -2, max: 3 }),
    name: fc.constantFrom('a', 'b', 'c', 'd', '1700000000.M1P2.host,S=5', 'x:2,S'),
    shape: fc.constantFrom('plain', 'guid', 'bad', 'cr'),
  });
  fc.assert(
    fc.property(fc.array(line, { maxLength: 12 }), fc.nat(), fc.boolean(), (lines, at, cut) => {
      let uid = 0;
      const texts = lines.map((l) => {
        uid = Math.max(1, uid + l.gap);
        if (l.shape === 'bad') return 'garbage\n';
        return `${uid}${l.shape === 'guid' ? ' Gsome-guid' : ''} :${l.name}${l.shape === 'cr' ? '\r' : ''}\n`;
      });
      const header = `3 V1 N1 G${GUID}\n`;
      const split = at % (texts.length + 1);
      const prefix = header + texts.slice(0, split).join('');
      const tail = texts.slice(split).join('') + (cut ? '9 :cut' : '');
      const whole = parseUidlist(prefix + tail, FILE);
      const first = parseUidlist(prefix, FILE);
      const added = parseAppendedLines(first.uidlist, first.uids, tail, first.uidlist.entries.length + 2, FILE);
      if (added === undefined) {
        // Refused only when a line of the tail names a file the prefix lists.
        assert.ok(whole.warnings.some((w) => w.includes('already listed')));
        return;
      }
      assert.deepEqual(added.uidlist, whole.uidlist);
      // Line numbers hold when the prefix read cleanly, the only case callers read the rest alone.
      if (first.warnings.length === 0) assert.deepEqual([...first.warnings, ...added.warnings], whole.warnings);
    }),
    { numRuns: 2000 },
  );
});

test('a 200,000-line uidlist is read in time proportional to its length', () => {
  const lines = Array.from({ length: 200_000 }, (_, i) => `${i + 1} :${1_700_000_000 + i}.M${i}P1.host,S=100,W=102\n`);
  const text = `3 V1 N1 G${GUID}\n${lines.join('')}`;
  const started = performance.now();
  const { uidlist, warnings } = parseUidlist(text, FILE);
  const ms = performance.now() - started;
  assert.deepEqual(warnings, []);
  assert.equal(uidlist.entries.length, 200_000);
  // Linear, this takes tens of milliseconds even on a busy machine; a search of the rest of the
  // file for each line (quadratic) took minutes.
  assert.ok(ms < 5_000, `${ms.toFixed(0)} ms`);
});

test("Dovecot's compress rule for a uidlist about to get lines", () => {
  assert.equal(uidlistWantsRewrite(4, 4, 0), false);
  assert.equal(uidlistWantsRewrite(4, 3, 0), true);
  assert.equal(uidlistWantsRewrite(7, 5, 1), true);
  assert.equal(uidlistWantsRewrite(7, 6, 1), false);
});
