/**
 * With LAYOUT=fs a deleted folder that has children stays as a plain directory holding them.
 * Renaming another folder to its name moves the folder there with its children, beside the
 * ones already under that name; a child name held on both sides is refused before anything moves.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MailferryError } from '../../src/model/errors.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runSync } from '../../src/sync/sync.js';
import { contents, saveOne } from '../sync/maildir-pair.js';

function openFs(root: string, layout: 'fs' | 'maildir++' = 'fs'): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}${layout === 'fs' ? ':LAYOUT=fs' : ''}`), { create: true, fsync: false, warn: () => {} });
}

const names = async (s: MaildirStore) => (await s.listMailboxes()).mailboxes.map((m) => m.name.join('/')).sort();

it('LAYOUT=fs: a folder renamed onto a deleted parent that still holds a child', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-rename-onto-parent-'));
  const s = openFs(join(dir, 'a'));
  try {
    await s.createMailbox(['Work']);
    await s.createMailbox(['Work', 'Sub']);
    await s.createMailbox(['Old']);
    await s.createMailbox(['Old', 'Child']);
    const sub = await saveOne(s, ['Work', 'Sub'], 'sub');
    const old = await saveOne(s, ['Old'], 'old');
    const child = await saveOne(s, ['Old', 'Child'], 'child');
    const guids = Object.fromEntries((await s.listMailboxes()).mailboxes.map((m) => [m.name.join('/'), m.guid]));
    await s.deleteMailbox(['Work']);
    assert.deepEqual(await names(s), ['INBOX', 'Old', 'Old/Child', 'Work/Sub']);
    await s.renameMailbox(['Old'], ['Work']);
    assert.deepEqual(await names(s), ['INBOX', 'Work', 'Work/Child', 'Work/Sub']);
    assert.ok(!existsSync(join(dir, 'a', 'Old')));
    const after = Object.fromEntries((await s.listMailboxes()).mailboxes.map((m) => [m.name.join('/'), m.guid]));
    assert.deepEqual(after, { INBOX: guids.INBOX, Work: guids.Old, 'Work/Child': guids['Old/Child'], 'Work/Sub': guids['Work/Sub'] });
    assert.deepEqual((await contents(s, ['Work'])).map((l) => l.split(' ')[1]), [old.guid]);
    assert.deepEqual((await contents(s, ['Work', 'Child'])).map((l) => l.split(' ')[1]), [child.guid]);
    assert.deepEqual((await contents(s, ['Work', 'Sub'])).map((l) => l.split(' ')[1]), [sub.guid]);
  } finally {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  }
});

for (const layout of ['fs', 'maildir++'] as const) {
  it(`${layout}: a rename whose child would land on an existing folder is refused before anything moves`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-rename-onto-parent-'));
    const s = openFs(join(dir, 'a'), layout);
    try {
      for (const n of [['Work'], ['Work', 'Sub'], ['Old'], ['Old', 'Sub'], ['Old', 'Other']]) await s.createMailbox(n);
      await s.deleteMailbox(['Work']);
      const before = await names(s);
      await assert.rejects(s.renameMailbox(['Old'], ['Work']), (err) => err instanceof MailferryError && err.kind === 'exists');
      assert.deepEqual(await names(s), before);
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

it('sync, LAYOUT=fs: A deletes Work (its child stays), B renames Work away and Old to Work', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-rename-onto-parent-'));
  const [a, b] = [openFs(join(dir, 'a')), openFs(join(dir, 'b'))];
  try {
    for (const n of [['Work'], ['Work', 'Sub'], ['Old']]) {
      await a.createMailbox(n);
      await saveOne(a, n, n.join('-'));
    }
    await runSync(a, b);
    await a.deleteMailbox(['Work']);
    await b.renameMailbox(['Work'], ['Papers']);
    await b.renameMailbox(['Old'], ['Work']);
    const r = await runSync(a, b);
    assert.equal(r.changedDuringSync, false);
    assert.deepEqual(await names(a), await names(b));
    assert.ok((await names(a)).includes('Work'));
    assert.deepEqual(await contents(a, ['Work']), await contents(b, ['Work']));
    assert.equal((await contents(a, ['Work'])).length, 1);
    const again = await runSync(a, b);
    assert.equal(again.treeActions + again.saved + again.expunged, 0);
  } finally {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it('LAYOUT=fs: a folder renamed onto plain directories that lead to a folder deeper down', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-rename-onto-parent-'));
  const s = openFs(join(dir, 'a'));
  try {
    for (const n of [['Work'], ['Work', 'Sub'], ['New', 'Sub', 'Deep']]) {
      await s.createMailbox(n);
      await saveOne(s, n, n.join('-'));
    }
    const guids = Object.fromEntries((await s.listMailboxes()).mailboxes.map((m) => [m.name.join('/'), m.guid]));
    await s.renameMailbox(['Work'], ['New']);
    const after = Object.fromEntries((await s.listMailboxes()).mailboxes.map((m) => [m.name.join('/'), m.guid]));
    assert.deepEqual(after, { INBOX: guids.INBOX, New: guids.Work, 'New/Sub': guids['Work/Sub'], 'New/Sub/Deep': guids['New/Sub/Deep'] });
    for (const n of [['New'], ['New', 'Sub'], ['New', 'Sub', 'Deep']]) assert.equal((await contents(s, n)).length, 1, n.join('/'));
  } finally {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it('sync, LAYOUT=fs: A renames Work to New while B moves Work/Sub/Deep elsewhere', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailferry-rename-onto-parent-'));
  const [a, b] = [openFs(join(dir, 'a')), openFs(join(dir, 'b'))];
  try {
    for (const n of [['Work'], ['Work', 'Sub'], ['Work', 'Sub', 'Deep']]) {
      await a.createMailbox(n);
      await saveOne(a, n, n.join('-'));
    }
    await runSync(a, b);
    await a.renameMailbox(['Work'], ['New']);
    await b.renameMailbox(['Work', 'Sub', 'Deep'], ['Archive', '2024']);
    const r = await runSync(a, b);
    assert.equal(r.changedDuringSync, false);
    assert.deepEqual(await names(a), await names(b));
    assert.equal((await names(a)).length, 4);
    const again = await runSync(a, b);
    assert.equal(again.treeActions + again.saved + again.expunged, 0);
  } finally {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  }
});

for (const [from, expected] of [
  [['Work', 'Sub'], { Work: 'Work/Sub', 'Work/Deep': 'Work/Sub/Deep' }],
  [['Work', 'Sub', 'Deep'], { Work: 'Work/Sub/Deep', 'Work/Sub': 'Work/Sub' }],
] as const) {
  it(`LAYOUT=fs: ${from.join('/')} renamed to the name of its deleted ancestor Work`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailferry-rename-onto-parent-'));
    const s = openFs(join(dir, 'a'));
    try {
      for (const n of [['Work'], ['Work', 'Sub'], ['Work', 'Sub', 'Deep']]) {
        await s.createMailbox(n);
        await saveOne(s, n, n.join('-'));
      }
      const guids = Object.fromEntries((await s.listMailboxes()).mailboxes.map((m) => [m.name.join('/'), m.guid]));
      await s.deleteMailbox(['Work']);
      await s.renameMailbox([...from], ['Work']);
      const after = Object.fromEntries((await s.listMailboxes()).mailboxes.map((m) => [m.name.join('/'), m.guid]));
      assert.deepEqual(after, { INBOX: guids.INBOX, ...Object.fromEntries(Object.entries(expected).map(([now, was]) => [now, guids[was]])) });
      for (const now of Object.keys(expected)) assert.equal((await contents(s, now.split('/'))).length, 1, now);
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}
