/**
 * The agreed flags a store keeps per peer and message GUID: the base of the next per-flag
 * merge. Looked up one by one for a few GUIDs and in one pass for many (a first sync).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { ChangeIndex, INDEX_FILENAME } from '../../src/storage/index/change-index.js';

it('synced flags: few and many GUIDs, other peers and mailboxes kept apart, replaceAll drops the rest', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-synced-flags-'));
  const index = ChangeIndex.open(dir);
  try {
    const rows = Array.from({ length: 1000 }, (_, i) => ({ guid: `g${i}`, flags: JSON.stringify({ flags: i % 2 ? ['\\Seen'] : [], keywords: [] }) }));
    index.setSyncedFlags('peer', 'box', rows, true);
    index.setSyncedFlags('other-peer', 'box', [{ guid: 'g1', flags: 'other' }], true);
    index.setSyncedFlags('peer', 'other-box', [{ guid: 'g2', flags: 'other' }], true);

    const few = index.syncedFlags('peer', 'box', ['g1', 'g2', 'missing']);
    assert.deepEqual([...few.keys()], ['g1', 'g2']);
    assert.equal(few.get('g1'), rows[1]!.flags);

    const asked = [...rows.filter((_, i) => i % 3 === 0).map((r) => r.guid), 'missing'];
    const many = index.syncedFlags('peer', 'box', asked);
    assert.equal(many.size, asked.length - 1);
    for (const g of asked.slice(0, -1)) assert.equal(many.get(g), rows[Number(g.slice(1))]!.flags);
    assert.equal(many.has('g1'), false, 'only what was asked for');

    index.setSyncedFlags('peer', 'box', [{ guid: 'g5', flags: 'new' }], true);
    assert.deepEqual([...index.syncedFlags('peer', 'box', rows.map((r) => r.guid))], [['g5', 'new']]);
    assert.equal(index.syncedFlags('other-peer', 'box', ['g1']).get('g1'), 'other');
  } finally {
    index.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it('a damaged pair-state record is left out, so that mailbox is compared in full', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-pair-state-'));
  const index = ChangeIndex.open(dir);
  try {
    const good = { uidValidity: 1, uidNext: 2, highestModseq: 3, peerUidValidity: 4, peerUidNext: 5, peerHighestModseq: 6 };
    index.setPairState('peer', { good, partial: { uidValidity: 1 }, wrong: { ...good, uidNext: 'x' } });
    const db = new Database(join(dir, INDEX_FILENAME));
    db.prepare("INSERT INTO pair_state (peer_id, mailbox_guid, state) VALUES ('peer', 'garbled', '{not json')").run();
    db.close();
    assert.deepEqual(index.pairState('peer'), { good });
  } finally {
    index.close();
    await rm(dir, { recursive: true, force: true });
  }
});
