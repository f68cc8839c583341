/**
 * A uidlist line whose file is gone is ordinary (Dovecot leaves them after every expunge and
 * drops them at its next rewrite): reading such a mailbox must not rewrite the uidlist, or the
 * source of `sync -1` or `backup` would be written to by merely being read.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { INBOX, openMaildir, saveOne, tempRoots, withStores } from '../sync/maildir-pair.js';

function unlinkMessage(root: string, guid: string): void {
  const file = readdirSync(join(root, 'cur')).find((f) => f.startsWith(guid));
  assert.ok(file, guid);
  unlinkSync(join(root, 'cur', file));
}

it('a scan that finds listed files gone records the expunges and leaves the uidlist as it is', async () => {
  const { dir, a } = await tempRoots('stale-lines');
  try {
    const s = openMaildir(a);
    try {
      const saved = [await saveOne(s, INBOX, 'one'), await saveOne(s, INBOX, 'two'), await saveOne(s, INBOX, 'three')];
      const uidlist = readFileSync(join(a, 'dovecot-uidlist'), 'utf8');
      unlinkMessage(a, saved[1]!.guid);
      const got = await s.getMessages(INBOX);
      assert.deepEqual(got.messages.map((m) => m.uid), [1, 3]);
      assert.deepEqual(got.expunged.map((e) => [e.uid, e.guid]), [[2, saved[1]!.guid]]);
      assert.equal(got.uidNext, 4);
      assert.equal(readFileSync(join(a, 'dovecot-uidlist'), 'utf8'), uidlist);
      // The stale line goes at the next write, as Dovecot does it; the UID is never handed out again.
      const four = await saveOne(s, INBOX, 'four');
      assert.equal(four.uid, 4);
      assert.deepEqual((await s.getMessages(INBOX)).messages.map((m) => m.uid), [1, 3, 4]);
    } finally {
      await s.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

for (const mode of ['sync -1', 'backup'] as const) {
  it(`${mode} from a source whose uidlist names deleted files leaves that uidlist untouched`, async () => {
    const { dir, a, b } = await tempRoots('stale-lines-source');
    try {
      const guids = await withStores(a, b, async (sa, sb) => {
        const out = [];
        for (let i = 1; i <= 10; i++) out.push((await saveOne(sa, INBOX, `m${i}`)).guid);
        await runBackup(sa, sb);
        return out;
      });
      // A MUA deletes the last message; the uidlist keeps its line.
      unlinkMessage(a, guids[9]!);
      const uidlist = readFileSync(join(a, 'dovecot-uidlist'), 'utf8');
      await withStores(a, b, async (sa, sb) => {
        if (mode === 'backup') await runBackup(sa, sb);
        else await runSync(sa, sb, { mode: 'oneway' });
        assert.equal((await sb.getMessages(INBOX)).messages.length, mode === 'backup' ? 9 : 10);
      });
      assert.equal(readFileSync(join(a, 'dovecot-uidlist'), 'utf8'), uidlist);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

it('restarting the UIDs of a mailbox whose uidlist still names deleted files drops those lines', async () => {
  const { dir, a } = await tempRoots('stale-lines-restart');
  try {
    const s = openMaildir(a);
    try {
      const box = ['Box'];
      await s.createMailbox(box);
      const saved = await saveOne(s, box, 'gone soon');
      const file = readdirSync(join(a, '.Box', 'cur')).find((f) => f.startsWith(saved.guid))!;
      unlinkSync(join(a, '.Box', 'cur', file));
      assert.deepEqual((await s.getMessages(box)).messages, []);
      await s.updateMailbox(box, { uidValidity: 12345, restartUids: true });
      const st = await s.mailboxStatus(box);
      assert.deepEqual([st!.uidValidity, st!.uidNext], [12345, 1]);
      assert.doesNotMatch(readFileSync(join(a, '.Box', 'dovecot-uidlist'), 'utf8'), new RegExp(saved.guid));
    } finally {
      await s.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('sync: one folder made on both sides, the one side\'s only message deleted by a MUA: the sides merge', async () => {
  const { dir, a, b } = await tempRoots('stale-lines-unify');
  try {
    const box = ['Archive'];
    await withStores(a, b, async (sa, sb) => {
      // Made at different times: two UIDVALIDITYs, so the emptied side takes the other's.
      await sb.createMailbox(box, { uidValidity: 1000 });
      await sa.createMailbox(box, { uidValidity: 2000 });
      const gone = await saveOne(sb, box, 'deleted by a MUA');
      const file = readdirSync(join(b, '.Archive', 'cur')).find((f) => f.startsWith(gone.guid))!;
      unlinkSync(join(b, '.Archive', 'cur', file));
      const kept = await saveOne(sa, box, 'kept');
      const r = await runSync(sa, sb);
      assert.equal(r.changedDuringSync, false);
      for (const s of [sa, sb]) assert.deepEqual((await s.getMessages(box)).messages.map((m) => m.guid), [kept.guid], s.location);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
