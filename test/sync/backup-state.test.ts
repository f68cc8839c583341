/**
 * A backup remembers what both sides looked like when it finished: the next backup skips the
 * mailboxes neither side changed since, and a two-way sync that follows treats the backup as
 * its last sync. A change on either side, by mailferry or by another program, is still seen.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import type { MailboxName, MailStore, SaveRequest } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailferry-backup-state-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Each run opens the stores afresh, as each CLI run does. */
async function withStores<T>(names: [string, string], fn: (a: MaildirStore, b: MaildirStore) => Promise<T>): Promise<T> {
  const open = (p: string) => MaildirStore.open(parseMaildirLocation(`maildir:${join(dir, p)}`), { create: true, fsync: false, warn: () => {} });
  const [a, b] = [open(names[0]), open(names[1])];
  try {
    return await fn(a, b);
  } finally {
    await a.close();
    await b.close();
  }
}

/** Mailbox directories a scan trusts only once their mtimes are two seconds old. */
const settle = () => new Promise((r) => setTimeout(r, 2100));

async function seed(name: string): Promise<void> {
  await withStores([name, `${name}-unused`], async (a) => {
    await a.createMailbox(['Work']);
    await a.saveMessages(['INBOX'], [req(message('one')), req(message('two'), { flags: ['\\Seen'] })]);
    await a.saveMessages(['Work'], [req(message('three'))]);
  });
}

async function flagsOf(store: MaildirStore, box: string[]): Promise<string[][]> {
  return (await store.getMessages(box)).messages.map((m) => [...m.flags, ...m.keywords].sort());
}

it('a second backup skips every unchanged mailbox; -f compares them all', async () => {
  await seed('s1');
  const first = await withStores(['s1', 'd1'], (a, b) => runBackup(a, b));
  assert.equal(first.saved, 3);
  assert.equal(first.skipped, 0);
  const again = await withStores(['s1', 'd1'], (a, b) => runBackup(a, b));
  assert.deepEqual([again.mailboxes, again.skipped, again.saved], [2, 2, 0]);
  const full = await withStores(['s1', 'd1'], (a, b) => runBackup(a, b, { full: true }));
  assert.deepEqual([full.mailboxes, full.skipped, full.saved, full.flagUpdates], [2, 0, 0, 0]);
});

it('a change at the source after a backup is copied by the next one; the untouched mailbox stays skipped', async () => {
  await seed('s2');
  await withStores(['s2', 'd2'], (a, b) => runBackup(a, b));
  await withStores(['s2', 'd2'], async (a) => {
    const uid = (await a.getMessages(['INBOX'])).messages[0]!.uid;
    await a.updateFlags(['INBOX'], [{ uid, flags: ['\\Flagged'], keywords: ['$Important'] }]);
  });
  const r = await withStores(['s2', 'd2'], (a, b) => runBackup(a, b));
  assert.deepEqual([r.skipped, r.flagUpdates], [1, 1]);
  await withStores(['s2', 'd2'], async (a, b) => assert.deepEqual(await flagsOf(b, ['INBOX']), await flagsOf(a, ['INBOX'])));
});

it('another program changing the destination behind the backup is undone by the next one', async () => {
  await seed('s3');
  await withStores(['s3', 'd3'], (a, b) => runBackup(a, b));
  // A mail client deletes one message file and flags another, straight in the Maildir.
  const cur = join(dir, 'd3', '.Work', 'cur');
  const [file] = await readdir(cur);
  await rm(join(cur, file!));
  const inbox = join(dir, 'd3', 'cur');
  const files = (await readdir(inbox)).sort();
  await rename(join(inbox, files[0]!), join(inbox, `${files[0]!.split(':')[0]}:2,F`));
  await settle();
  const r = await withStores(['s3', 'd3'], (a, b) => runBackup(a, b));
  assert.deepEqual([r.skipped, r.saved, r.flagUpdates], [0, 1, 1]);
  await withStores(['s3', 'd3'], async (a, b) => {
    assert.deepEqual(await flagsOf(b, ['INBOX']), await flagsOf(a, ['INBOX']));
    assert.equal((await b.getMessages(['Work'])).messages.length, 1);
  });
});

it('a sync after a backup skips what is unchanged, and a flag set on the destination since wins', async () => {
  await seed('s4');
  await withStores(['s4', 'd4'], (a, b) => runBackup(a, b));
  const noop = await withStores(['s4', 'd4'], (a, b) => runSync(a, b));
  assert.deepEqual([noop.mailboxes, noop.skipped], [2, 2]);
  // Without the backup's state every difference would be a conflict the first side wins.
  await withStores(['s4', 'd4'], async (_a, b) => {
    const m = (await b.getMessages(['INBOX'])).messages[1]!;
    await b.updateFlags(['INBOX'], [{ uid: m.uid, flags: [...m.flags, '\\Answered'], keywords: ['later'] }]);
  });
  const r = await withStores(['s4', 'd4'], (a, b) => runSync(a, b));
  assert.equal(r.skipped, 1);
  await withStores(['s4', 'd4'], async (a) => {
    assert.deepEqual((await flagsOf(a, ['INBOX']))[1], ['\\Answered', '\\Seen', 'later']);
  });
});

it('a filtered or dry run records nothing, so the next backup still compares', async () => {
  await seed('s5');
  await withStores(['s5', 'd5'], (a, b) => runBackup(a, b, { messageFilter: (m) => m.flags.length === 0 }));
  const dry = await withStores(['s5', 'd5'], (a, b) => runBackup(a, b, { dryRun: true }));
  assert.equal(dry.skipped, 0);
  assert.ok(dry.saved >= 1, 'the message the filter left out is still to be copied');
  const r = await withStores(['s5', 'd5'], (a, b) => runBackup(a, b));
  assert.equal(r.skipped, 0);
  await withStores(['s5', 'd5'], async (a, b) => {
    for (const box of [['INBOX'], ['Work']]) assert.deepEqual(await flagsOf(b, box), await flagsOf(a, box));
  });
});

it('mail another program puts into the destination right after our writes is not recorded as in sync', async () => {
  await seed('s6');
  await withStores(['s6', 'd6'], (a, b) => runBackup(a, b));
  await withStores(['s6', 'd6'], (a) => a.saveMessages(['Work'], [req(message('new at the source'))]));
  // A delivery into the destination the moment our save is done.
  const delivering = (inner: MaildirStore): MailStore =>
    new Proxy(inner, {
      get(target, prop) {
        if (prop === 'saveMessages') {
          return async (name: MailboxName, reqs: Iterable<SaveRequest> | AsyncIterable<SaveRequest>) => {
            const saved = await target.saveMessages(name, reqs);
            await target.saveMessages(name, [req(message('delivered meanwhile'))]);
            return saved;
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as MailStore;
  const r = await withStores(['s6', 'd6'], (a, b) => runBackup(a, delivering(b)));
  assert.equal(r.saved, 1);
  assert.equal(r.changedDuringSync, true, 'exit 2: the destination changed under the run');
  const next = await withStores(['s6', 'd6'], (a, b) => runBackup(a, b));
  // Work is looked at again (and emptied of the stray message, here by a rebuild: the stray
  // took a UID past the source's UIDNEXT); only the untouched INBOX is skipped.
  assert.equal(next.skipped, 1, 'the next backup does not skip the changed mailbox');
  assert.equal(next.rebuilt + next.expunged > 0, true);
  await withStores(['s6', 'd6'], async (a, b) => assert.equal((await b.getMessages(['Work'])).messages.length, (await a.getMessages(['Work'])).messages.length));
});
