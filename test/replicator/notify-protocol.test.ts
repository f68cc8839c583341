/**
 * The codec of Dovecot 2.3's replication notify lines: the plugin's and the aggregator's lines
 * as Dovecot writes them (tab-escaped user names included), every way a line can be wrong
 * refused with a NotifyProtocolError naming what is wrong, random bytes never anything else,
 * valid requests through encode and decode unchanged, and the line splitter's bound.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeHandshake,
  decodeLine,
  decodePluginLine,
  decodeReplicatorLine,
  encodePluginLine,
  encodeReplicatorLine,
  encodeSyncReply,
  isHandshake,
  LineSplitter,
  MAX_NOTIFY_LINE,
  NOTIFY_HANDSHAKE,
  NotifyProtocolError,
  tabEscape,
  tabUnescape,
  TOO_LONG,
  type NotifyRequest,
} from '../../src/replicator/notify-protocol.js';

const b = (s: string) => Buffer.from(s, 'utf8');

function refused(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof NotifyProtocolError, `a NotifyProtocolError, not ${String(err)}`);
    assert.match(err.message, re);
    assert.equal(err.exitCode, 65);
    return true;
  });
}

test('lines as Dovecot writes them decode to the user and priority', () => {
  assert.deepEqual(decodePluginLine(b('alice\thigh')), { user: 'alice', priority: 'high' });
  assert.deepEqual(decodePluginLine(b('bob@example.com\tlow')), { user: 'bob@example.com', priority: 'low' });
  assert.deepEqual(decodePluginLine(b('jürgen müller\tsync')), { user: 'jürgen müller', priority: 'sync' });
  // str_append_tabescaped: \001 1 for \001 itself; a name with one cannot be a user, so it is refused after unescaping.
  assert.equal(tabUnescape('a\x011b\x01tc'), 'a\x01b\tc');
  assert.deepEqual(decodeReplicatorLine(b('U\tcarol\tlow')), { user: 'carol', priority: 'low' });
  assert.deepEqual(decodeReplicatorLine(b('U\tcarol\tsync\t4294967295')), { user: 'carol', priority: 'sync', id: 4294967295 });
  assert.deepEqual(decodeHandshake(b(NOTIFY_HANDSHAKE)), { major: 1, minor: 0 });
  assert.ok(isHandshake(b(NOTIFY_HANDSHAKE)));
  assert.ok(!isHandshake(b('VERSION')));
  // A user named VERSION asks in the plugin's dialect; a wrong VERSION line is still one, to be refused.
  assert.ok(!isHandshake(b('VERSION\tsync')));
  assert.deepEqual(decodePluginLine(b('VERSION\tsync')), { user: 'VERSION', priority: 'sync' });
  assert.ok(isHandshake(b('VERSION\treplicator-notify\t1')));
  assert.equal(encodeSyncReply(true), '+\n');
  assert.equal(encodeSyncReply(false, 7), '-\t7\n');
  assert.equal(encodeReplicatorLine({ user: 'a\tb', priority: 'sync', id: 3 }), 'U\ta\x01tb\tsync\t3\n');
});

test('every wrong line is refused with a message naming what is wrong', () => {
  refused(() => decodePluginLine(b('alice')), /expected <user> TAB <priority>, got 1 field/);
  refused(() => decodePluginLine(b('alice\thigh\textra')), /got 3 fields/);
  refused(() => decodePluginLine(b('alice\turgent')), /unknown priority "urgent"/);
  refused(() => decodePluginLine(b('alice\tHIGH')), /unknown priority/);
  refused(() => decodePluginLine(b('\thigh')), /user name "" is empty/);
  refused(() => decodePluginLine(b('../etc\thigh')), /contains '\/'/);
  refused(() => decodePluginLine(b('..\thigh')), /is '\.\.'/);
  refused(() => decodePluginLine(b('a\x01nb\thigh')), /contains control characters/);
  refused(() => decodePluginLine(b('a\x010b\thigh')), /contains a NUL byte/);
  refused(() => decodePluginLine(b('alice\x01')), /half an escape/);
  refused(() => decodePluginLine(b(`${'x'.repeat(256)}\thigh`)), /longer than 255 bytes/);
  refused(() => decodePluginLine(Buffer.from([0x61, 0xff, 0x09, 0x6c, 0x6f, 0x77])), /not UTF-8/);
  refused(() => decodePluginLine(Buffer.alloc(MAX_NOTIFY_LINE + 1, 0x61)), /a line of 8193 bytes/);
  refused(() => decodeReplicatorLine(b('X\talice\tlow')), /unknown command "X"/);
  refused(() => decodeReplicatorLine(b('U\talice')), /expected U TAB <user>/);
  refused(() => decodeReplicatorLine(b('U\talice\tsync')), /sync request without a valid id/);
  refused(() => decodeReplicatorLine(b('U\talice\tsync\t-1')), /valid id/);
  refused(() => decodeReplicatorLine(b('U\talice\tsync\t4294967296')), /valid id/);
  refused(() => decodeReplicatorLine(b('U\talice\thigh\t5')), /an id with priority high/);
  refused(() => decodeHandshake(b('VERSION\treplicator-doveadm-client\t1\t0')), /not replicator-notify version 1/);
  refused(() => decodeHandshake(b('VERSION\treplicator-notify\t2\t0')), /version 2, not replicator-notify version 1/);
  refused(() => decodeHandshake(b('VERSION\treplicator-notify\t1')), /not a VERSION line/);
});

test('random bytes never throw anything but a NotifyProtocolError', () => {
  const lineBytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    // Mostly-plausible lines: fields of printable text, tabs, escapes, priorities.
    fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('low', 'high', 'sync', 'none', 'U', 'VERSION', '\x01', '\x01t', '7')), { maxLength: 6 }).map((f) => b(f.join('\t'))),
  );
  fc.assert(
    fc.property(lineBytes, fc.constantFrom('plugin' as const, 'replicator' as const), (line, dialect) => {
      for (const decode of [() => decodeLine(line, dialect), () => decodeHandshake(line)]) {
        try {
          const r = decode();
          assert.equal(typeof r, 'object');
        } catch (err) {
          if (!(err instanceof NotifyProtocolError)) throw err;
        }
      }
    }),
    { numRuns: 2000 },
  );
});

const userName = fc
  .string({ minLength: 1, maxLength: 40, unit: 'grapheme' })
  .filter((u) => !/[\u0000-\u001f\u007f/]/.test(u) && u !== '.' && u !== '..' && Buffer.byteLength(u) <= 255);

test('valid requests go through encode and decode unchanged, in both dialects', () => {
  const request = fc.record({ user: userName, priority: fc.constantFrom('none' as const, 'low' as const, 'high' as const, 'sync' as const), id: fc.integer({ min: 0, max: 0xffffffff }) }, { noNullPrototype: true });
  fc.assert(
    fc.property(request, ({ user, priority, id }) => {
      const plugin = encodePluginLine({ user, priority });
      assert.ok(plugin.endsWith('\n') && !plugin.slice(0, -1).includes('\n'));
      assert.deepEqual(decodePluginLine(b(plugin.slice(0, -1))), { user, priority });
      const expected: NotifyRequest = priority === 'sync' ? { user, priority, id } : { user, priority };
      assert.deepEqual(decodeReplicatorLine(b(encodeReplicatorLine(expected).slice(0, -1))), expected);
    }),
    { numRuns: 500 },
  );
  fc.assert(fc.property(fc.string({ maxLength: 50 }), (s) => assert.equal(tabUnescape(tabEscape(s)), s)));
});

test('the splitter gives whole lines whatever the chunks, and a line past the bound once as TOO_LONG without keeping it', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, '')), { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1 }), (lines, cuts) => {
      const data = b(lines.map((l, i) => `${l}${i % 2 ? '\r\n' : '\n'}`).join(''));
      const s = new LineSplitter(200);
      const got: string[] = [];
      let at = 0;
      for (let i = 0; at < data.length; i++) {
        const n = cuts[i % cuts.length]!;
        for (const l of s.push(data.subarray(at, at + n))) got.push(l === TOO_LONG ? '<long>' : l.toString('utf8'));
        at += n;
      }
      assert.deepEqual(got, lines);
      assert.equal(s.pending, 0);
    }),
  );
  const s = new LineSplitter(10);
  assert.deepEqual(s.push(b('0123456789\r\n')), [b('0123456789')]);
  assert.deepEqual(s.push(b('0123456789x')), []); // it may still end in CR LF
  assert.deepEqual(s.push(b('y')), [TOO_LONG]);
  // A writer that never ends its line: nothing is kept.
  for (let i = 0; i < 100; i++) assert.deepEqual(s.push(Buffer.alloc(1000, 0x61)), []);
  assert.equal(s.pending, 0);
  assert.deepEqual(s.push(b('tail\nalice\thigh\n')), [b('alice\thigh')]);
  assert.deepEqual(s.push(b('01234567890\n')), [TOO_LONG]);
});
