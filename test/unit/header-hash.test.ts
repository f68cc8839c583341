import assert from 'node:assert/strict';
import { test } from 'node:test';
import { headerBlockOf, headerHash } from '../../src/model/header-hash.js';

const h = (s: string) => headerHash(Buffer.from(s, 'latin1'));

test('only Date and Message-ID count, in message order, with the end of the header', () => {
  const base = 'From: a@x\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nSubject: hi\nMessage-ID: <1@x>\n\nbody\n';
  assert.equal(h(base), h(base.replace('Subject: hi', 'Subject: changed').replace('body', 'other body')));
  assert.notEqual(h(base), h(base.replace('<1@x>', '<2@x>')));
  assert.match(h(base), /^[0-9a-f]{32}$/);
});

test('spaces, CRLF and runs of odd bytes do not change the hash', () => {
  const lf = 'Date: Mon,  1 Jan 2024\nMessage-ID: <1@x>\n\n';
  assert.equal(h(lf), h(lf.replace(/\n/g, '\r\n')));
  assert.equal(h(lf), h(lf.replace('Mon,  1', 'Mon,1')));
  assert.equal(h('Message-ID: <\u00e9\u00e9@x>\n\n'), h('Message-ID: <?@x>\n\n'));
  assert.equal(h('Message-ID: <a\u0001\u0002b@x>\n\n'), h('Message-ID: <a?b@x>\n\n'));
});

test('folded lines belong to their header; header names are case-insensitive', () => {
  assert.notEqual(h('date: x\nmessage-id: <1@x>\n\n'), h('\n'), 'lower-case names are selected too');
  assert.notEqual(h('Date: x\n\tcontinued\n\n'), h('Date: x\n\n'));
  assert.notEqual(h('X-Other: 1\n\tDate: x\n\n'), h('Date: x\n\n'), 'a folded line of another header is not a Date');
});

test('a message without the headers still hashes (all such messages alike)', () => {
  assert.equal(h('Subject: a\n\nbody'), h('Subject: b\n\nother'));
  assert.equal(h(''), h('\n'));
});

test('headerBlockOf cuts at the first empty line, LF or CRLF', () => {
  assert.equal(Buffer.from(headerBlockOf(Buffer.from('A: 1\nB: 2\n\nbody\n\nmore'))).toString(), 'A: 1\nB: 2\n');
  assert.equal(Buffer.from(headerBlockOf(Buffer.from('A: 1\r\n\r\nbody'))).toString(), 'A: 1\r\n');
  assert.equal(Buffer.from(headerBlockOf(Buffer.from('A: 1\n'))).toString(), 'A: 1\n');
});
