import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PendingAppends, type PendingAppend } from '../../src/storage/imap/pending-appends.js';

const entry = (uid: number): PendingAppend => ({ hash: `h${uid}`, wireSize: 100 + uid, size: 90 + uid, guid: '', uid, flags: [], keywords: [], receivedDate: 0 });

test('the pending-append log: one append per change, forget waits for the next write, a torn last line is skipped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-pending-'));
  try {
    const log = join(dir, 'pending-appends.log');
    const j = new PendingAppends(dir);
    j.set('A', [entry(1), entry(2)]);
    j.set('B', [entry(9)]);
    assert.equal(readFileSync(log, 'utf8').split('\n').filter(Boolean).length, 2, 'appended, not rewritten');
    // Forgotten in memory only: a crash now leaves the entries, which the next look drops.
    j.forget('A', new Set([j.of('A')[0]!]));
    assert.deepEqual(new PendingAppends(dir).of('A').map((p) => p.uid), [1, 2]);
    j.set('A', [...j.of('A'), entry(3)]);
    assert.deepEqual(new PendingAppends(dir).of('A').map((p) => p.uid), [2, 3]);
    // A crash in the middle of a line: that line is skipped and the next one is not glued to it.
    appendFileSync(log, '{"m":"A","items":[{"hash":"x"');
    const after = new PendingAppends(dir);
    assert.deepEqual(after.of('A').map((p) => p.uid), [2, 3]);
    after.set('B', [entry(8)]);
    const again = new PendingAppends(dir);
    assert.deepEqual(again.of('B').map((p) => p.uid), [8]);
    assert.deepEqual(again.of('A').map((p) => p.uid), [2, 3]);
    // Nothing pending: the log is emptied.
    again.set('A', []);
    again.set('B', []);
    assert.equal(statSync(log).size, 0);
    assert.deepEqual(new PendingAppends(dir).of('A'), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the single JSON file of earlier versions is read, and replaced at the first write', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-pending-'));
  try {
    writeFileSync(join(dir, 'pending-appends.json'), JSON.stringify({ A: [entry(1)], B: [entry(2)] }));
    const j = new PendingAppends(dir);
    assert.deepEqual(j.of('A').map((p) => p.uid), [1]);
    j.set('A', []);
    assert.ok(!existsSync(join(dir, 'pending-appends.json')));
    const again = new PendingAppends(dir);
    assert.deepEqual(again.of('A'), []);
    assert.deepEqual(again.of('B').map((p) => p.uid), [2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
