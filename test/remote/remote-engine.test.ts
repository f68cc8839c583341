/**
 * The sync engine with one side remote (in-process pipe): backup to and from a remote store,
 * a no-op second run, changes carried over, and a two-way sync with changes on both sides.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/storage/open-store.js';
import type { MailStore } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { messageFilter } from '../../src/sync/message-filter.js';
import { runSync } from '../../src/sync/sync.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';
import { snapshot } from './mail-snapshot.js';
import { connectInProcess } from './serve-in-process.js';

const MAILBOXES = [['INBOX'], ['Sent Items'], ['Entwürfe'], ['Work', 'Q3 2024']];

async function fill(store: MailStore, bodies: Buffer[]): Promise<void> {
  for (const name of MAILBOXES.slice(1)) await store.createMailbox(name);
  await store.setSubscribed(['Sent Items'], true);
  for (let i = 0; i < MAILBOXES.length; i++) {
    const mine = bodies.filter((_, j) => j % MAILBOXES.length === i);
    await store.saveMessages(MAILBOXES[i]!, mine.map((b, k) => req(b, { flags: k % 3 === 0 ? ['\\Seen'] : [], keywords: k % 5 === 0 ? ['$Label1'] : [] })));
  }
}

const local = (location: string) => openStore(location, { create: true, fsync: false, warn: () => {} });

describe('engine runs with a remote side (in-process pipe)', () => {
  let dir: string;
  let bodies: Buffer[];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-remote-engine-'));
    bodies = corpusMessages(240);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('backup to a remote Maildir, again (nothing to do), then after changes', async () => {
    const srcLoc = `maildir:${join(dir, 'a-src')}:LAYOUT=fs`;
    const dstLoc = `maildir:${join(dir, 'a-dst')}:LAYOUT=fs`;
    const src = await local(srcLoc);
    await fill(src, bodies);
    let remote = (await connectInProcess(dstLoc)).store;
    const first = await runBackup(src, remote);
    assert.equal(first.saved, bodies.length);
    assert.equal(first.changedDuringSync, false);
    await remote.close();

    remote = (await connectInProcess(dstLoc)).store;
    const second = await runBackup(src, remote);
    assert.equal(second.saved, 0);
    assert.equal(second.skipped, MAILBOXES.length, 'every mailbox is known unchanged');

    const inbox = await src.getMessages(['INBOX']);
    await src.updateFlags(['INBOX'], [{ uid: inbox.messages[0]!.uid, flags: ['\\Flagged'], keywords: ['work'] }]);
    await src.expunge(['INBOX'], [inbox.messages[1]!.uid]);
    await src.saveMessages(['Entwürfe'], [req(bodies[0]!)]);
    await src.renameMailbox(['Work', 'Q3 2024'], ['Archive 2024']);
    const third = await runBackup(src, remote);
    assert.equal(third.saved, 1);
    assert.equal(third.expunged, 1);
    assert.equal(third.flagUpdates, 1);
    await remote.close();

    const dst = await local(dstLoc);
    assert.deepEqual(await snapshot(dst), await snapshot(src));
    assert.equal((await dst.listMailboxes()).mailboxes.find((m) => m.name[0] === 'Sent Items')?.subscribed, true);
    await dst.close();
    await src.close();
  });

  it('backup from a remote Maildir to a local mbox (pull)', async () => {
    const srcLoc = `maildir:${join(dir, 'b-src')}:LAYOUT=fs`;
    const src = await local(srcLoc);
    await fill(src, bodies);
    await src.close();
    const remote = (await connectInProcess(srcLoc)).store;
    const dst = await local(`mbox:${join(dir, 'b-dst')}`);
    const result = await runBackup(remote, dst);
    assert.equal(result.saved, bodies.length);
    assert.deepEqual(await snapshot(dst, { guids: false }), await snapshot(remote, { guids: false }));
    await remote.close();
    await dst.close();
  });

  it('two-way sync with a remote mbox, changes on both sides', async () => {
    const aLoc = `maildir:${join(dir, 'c-a')}:LAYOUT=fs`;
    const bLoc = `mbox:${join(dir, 'c-b')}`;
    const a = await local(aLoc);
    await fill(a, bodies.slice(0, 80));
    let b = (await connectInProcess(bLoc)).store;
    await runSync(a, b);
    await b.close();

    const bLocal = await local(bLoc);
    const bInbox = await bLocal.getMessages(['INBOX']);
    await bLocal.updateFlags(['INBOX'], [{ uid: bInbox.messages[0]!.uid, flags: ['\\Answered'], keywords: [] }]);
    await bLocal.saveMessages(['Sent Items'], [req(bodies[100]!)]);
    await bLocal.close();
    const aInbox = await a.getMessages(['INBOX']);
    await a.expunge(['INBOX'], [aInbox.messages[2]!.uid]);
    await a.saveMessages(['INBOX'], [req(bodies[101]!)]);

    b = (await connectInProcess(bLoc)).store;
    const r = await runSync(a, b);
    assert.equal(r.changedDuringSync, false);
    assert.deepEqual(await snapshot(b, { guids: false }), await snapshot(a, { guids: false }));
    const again = await runSync(a, b);
    assert.equal(again.saved + again.expunged + again.flagUpdates, 0);
    await b.close();
    await a.close();
  });

  it('a first sync of two sides holding different mail at the same UIDs: the remote mbox renumbers its own mail while its save holds the lock', async () => {
    const aLoc = `maildir:${join(dir, 'd-a')}`;
    const bLoc = `mbox:${join(dir, 'd-b')}`;
    const a = await local(aLoc);
    await a.saveMessages(['INBOX'], bodies.slice(0, 230).map((body) => req(body)));
    const bLocal = await local(bLoc);
    await bLocal.saveMessages(['INBOX'], corpusMessages(470).slice(240).map((body) => req(body)));
    await bLocal.close();
    // A lock wait here would be a deadlock: fail in seconds, not after the default 30.
    const b = (await connectInProcess(bLoc, { lockSeconds: 3 })).store;
    // What is asked here is that the run ends instead of waiting out the lock. Whether it ends
    // with both sides settled (rather than exit 2) varies from run to run with local stores too.
    await runSync(a, b);
    for (const side of [a, b]) {
      const held = new Set((await snapshot(side, { guids: false })).INBOX!.map((m) => m.md5));
      assert.equal(held.size, 460, 'each side holds all mail of both');
    }
    await b.close();
    await a.close();
  });

  it('a pull opens bodies ahead along the listing, and every body opened is closed by the end', async () => {
    const srcLoc = `maildir:${join(dir, 'e-src')}`;
    const src = await local(srcLoc);
    await src.saveMessages(['INBOX'], bodies.slice(0, 120).map((b) => req(b)));
    await src.close();
    // Only messages of at most 4 kB are copied: the engine skips the others, and what was opened
    // ahead for them must be let go.
    const dst = await local(`maildir:${join(dir, 'e-dst')}`);
    let inFlight = 0;
    let most = 0;
    let opened = 0;
    let closed = 0;
    const { store: remote } = await connectInProcess(srcLoc, {
      wrap: (s) =>
        Object.assign(Object.create(s) as MailStore, {
          openMessage: async (name: readonly string[], uid: number) => {
            inFlight++;
            most = Math.max(most, inFlight);
            await new Promise((r) => setTimeout(r, 2));
            try {
              const body = await s.openMessage(name, uid);
              opened++;
              body.on('close', () => closed++);
              return body;
            } finally {
              inFlight--;
            }
          },
        }),
    });
    const small = bodies.slice(0, 120).filter((b) => b.length <= 4000).length;
    assert.ok(small > 20 && small < 100);
    const first = await runBackup(remote, dst, { messageFilter: messageFilter({ maxSize: '4000' }) });
    assert.equal(first.saved, small);
    assert.ok(most >= 4, `at most ${most} bodies were asked for at once`);
    await remote.close();
    assert.equal(closed, opened, 'every body opened on the far side was closed');
    await dst.close();
  });
  it('an incremental sync with a remote Maildir reads only the changed messages on the far side, and both ends agree', async () => {
    const aLoc = `maildir:${join(dir, 'i-a')}`;
    const bLoc = `maildir:${join(dir, 'i-b')}`;
    const a = await local(aLoc);
    await fill(a, bodies.slice(0, 80));
    const whole: string[] = [];
    const watch = (store: MailStore): MailStore =>
      new Proxy(store, {
        get(target, prop, receiver) {
          const value: unknown = Reflect.get(target, prop, receiver);
          if (prop !== 'getMessages' || typeof value !== 'function') return value;
          return (name: string[], since?: number) => {
            if (since === undefined) whole.push(name.join('/'));
            return (value as MailStore['getMessages']).call(target, name, since);
          };
        },
      });
    let remote = (await connectInProcess(bLoc, { wrap: watch })).store;
    assert.equal((await runSync(a, remote)).changedDuringSync, false);
    // The run after a first sync records the proven state an incremental run plans from.
    await runSync(a, remote);
    await remote.close();
    const inbox = await a.getMessages(['INBOX']);
    await a.updateFlags(['INBOX'], [{ uid: inbox.messages[0]!.uid, flags: ['\\Answered'], keywords: ['$Done'] }]);
    const b = await local(bLoc);
    const far = await b.getMessages(['INBOX']);
    await b.updateFlags(['INBOX'], [{ uid: far.messages[3]!.uid, flags: ['\\Flagged'], keywords: [] }]);
    await b.expunge(['INBOX'], [far.messages[5]!.uid]);
    await b.saveMessages(['INBOX'], [req(bodies[100]!)]);
    await b.close();
    whole.length = 0;
    remote = (await connectInProcess(bLoc, { wrap: watch })).store;
    const r = await runSync(a, remote);
    assert.equal(r.changedDuringSync, false);
    assert.deepEqual(whole, [], 'the far side listed no mailbox whole');
    assert.equal(r.saved, 1);
    assert.equal(r.expunged, 1);
    await remote.close();
    const bAfter = await local(bLoc);
    assert.deepEqual(await snapshot(bAfter), await snapshot(a));
    await bAfter.close();
    await a.close();
  });
});
