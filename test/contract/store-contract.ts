/**
 * The store contract suite: every MailStore implementation runs these same tests
 * (`runStoreContract({ name, open })`). A store that cannot honour one names it in `skip`
 * with a reason.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { MailStore, SaveRequest, SystemFlag } from '../../src/storage/store.js';
import { MailferryError } from '../../src/model/errors.js';

export interface ContractTarget {
  name: string;
  /** A fresh, empty store (INBOX only). `reopen` opens the same location again. */
  open(): Promise<{ store: MailStore; reopen(): Promise<MailStore>; cleanup(): Promise<void> }>;
  skip?: { test: string; reason: string }[];
}

export function message(subject: string, body = 'hello\n', extra = ''): Buffer {
  return Buffer.from(
    `From: a@example.org\nTo: b@example.org\nSubject: ${subject}\nMessage-ID: <${subject.replace(/\W/g, '')}@example.org>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n${extra}\n${body}`,
  );
}

export function req(body: Buffer, opts: Partial<Omit<SaveRequest, 'body'>> = {}): SaveRequest {
  return {
    flags: [],
    keywords: [],
    receivedDate: Date.UTC(2024, 0, 1, 10, 0, 0),
    ...opts,
    body: () => Readable.from([body]),
  };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

export function runStoreContract(target: ContractTarget): void {
  const skipped = new Map((target.skip ?? []).map((s) => [s.test, s.reason]));
  const test = (title: string, fn: (s: MailStore, reopen: () => Promise<MailStore>) => Promise<void>) =>
    it(title, { skip: skipped.get(title) ?? false }, async () => {
      const { store, reopen, cleanup } = await target.open();
      const opened: MailStore[] = [store];
      try {
        await fn(store, async () => {
          const s = await reopen();
          opened.push(s);
          return s;
        });
      } finally {
        for (const s of opened) await s.close();
        await cleanup();
      }
    });

  describe(`store contract: ${target.name}`, () => {
    test('a fresh store lists INBOX with a GUID, UIDVALIDITY and UIDNEXT 1', async (s) => {
      const list = await s.listMailboxes();
      const inbox = list.mailboxes.find((m) => m.name.join('/') === 'INBOX');
      assert.ok(inbox, 'INBOX is listed');
      assert.match(inbox.guid, /^[0-9a-f]{32}$/);
      assert.ok(inbox.uidValidity > 0);
      assert.equal(inbox.uidNext, 1);
      assert.equal(inbox.messages, 0);
    });

    test('saves keep body bytes, flags, keywords, received date and wanted UIDs', async (s) => {
      const body = message('first', 'line one\nline two\n');
      const saved = await s.saveMessages(['INBOX'], [
        req(body, { uid: 5, flags: ['\\Seen', '\\Flagged'], keywords: ['$Label1', 'work'], receivedDate: Date.UTC(2001, 1, 3, 4, 5, 6) }),
        req(message('second'), { uid: 3 }),
      ]);
      assert.equal(saved[0]!.uid, 5);
      assert.equal(saved[1]!.uid, 6, 'a wanted UID below UIDNEXT takes the next free UID');
      const { messages, uidNext } = await s.getMessages(['INBOX']);
      assert.equal(uidNext, 7);
      assert.deepEqual(messages.map((m) => m.uid), [5, 6]);
      const first = messages[0]!;
      assert.deepEqual([...first.flags].sort(), ['\\Flagged', '\\Seen']);
      assert.deepEqual([...first.keywords].sort(), ['$Label1', 'work']);
      assert.equal(first.receivedDate, Date.UTC(2001, 1, 3, 4, 5, 6));
      assert.equal(first.size, body.length);
      assert.equal(first.guid, saved[0]!.guid);
      assert.deepEqual(await readAll(await s.openMessage(['INBOX'], 5)), body);
    });

    test('a given GUID is kept', async (s) => {
      const [saved] = await s.saveMessages(['INBOX'], [req(message('g'), { guid: 'a1b2c3d4e5f60718293a4b5c6d7e8f90' })]);
      assert.equal(saved!.guid, 'a1b2c3d4e5f60718293a4b5c6d7e8f90');
      const again = await (await s.getMessages(['INBOX'])).messages[0]!;
      assert.equal(again.guid, 'a1b2c3d4e5f60718293a4b5c6d7e8f90');
    });

    test('empty and large messages round-trip byte for byte', async (s) => {
      const empty = Buffer.alloc(0);
      const large = Buffer.alloc(12 * 1024 * 1024, 'x\n');
      const saved = await s.saveMessages(['INBOX'], [req(empty), req(large)]);
      assert.deepEqual(await readAll(await s.openMessage(['INBOX'], saved[0]!.uid)), empty);
      const back = await readAll(await s.openMessage(['INBOX'], saved[1]!.uid));
      assert.equal(back.length, large.length);
      assert.ok(back.equals(large));
    });

    test('more than 26 keywords survive', async (s, reopen) => {
      const keywords = Array.from({ length: 30 }, (_, i) => `kw${i}`);
      const [saved] = await s.saveMessages(['INBOX'], [req(message('kw'), { keywords })]);
      const m = (await (await reopen()).getMessages(['INBOX'])).messages.find((x) => x.uid === saved!.uid)!;
      assert.deepEqual([...m.keywords].sort(), [...keywords].sort());
    });

    test('flag updates replace the set and raise the modseq', async (s) => {
      const [a, b] = await s.saveMessages(['INBOX'], [req(message('a'), { flags: ['\\Seen'] }), req(message('b'))]);
      const before = await s.getMessages(['INBOX']);
      await s.updateFlags(['INBOX'], [
        { uid: a!.uid, flags: ['\\Answered'], keywords: ['x'] },
        { uid: 999, flags: ['\\Seen'], keywords: [] },
      ]);
      const after = await s.getMessages(['INBOX'], before.highestModseq);
      assert.equal(after.incremental, true);
      assert.deepEqual(after.messages.map((m) => m.uid), [a!.uid]);
      assert.deepEqual(after.messages[0]!.flags, ['\\Answered']);
      assert.deepEqual(after.messages[0]!.keywords, ['x']);
      assert.ok(after.messages[0]!.modseq > before.highestModseq);
      assert.ok(after.highestModseq > before.highestModseq);
      const all = await s.getMessages(['INBOX']);
      assert.deepEqual(all.messages.find((m) => m.uid === b!.uid)!.flags, []);
    });

    test('expunges are reported with their GUIDs', async (s) => {
      const saved = await s.saveMessages(['INBOX'], [req(message('x')), req(message('y'))]);
      const before = await s.getMessages(['INBOX']);
      await s.expunge(['INBOX'], [saved[0]!.uid, 12345]);
      const after = await s.getMessages(['INBOX'], before.highestModseq);
      assert.deepEqual(after.expunged.map((e) => [e.uid, e.guid]), [[saved[0]!.uid, saved[0]!.guid]]);
      assert.deepEqual((await s.getMessages(['INBOX'])).messages.map((m) => m.uid), [saved[1]!.uid]);
      await assert.rejects(s.openMessage(['INBOX'], saved[0]!.uid), MailferryError);
    });

    test('mailboxes with spaces, unicode, & and deep hierarchy', async (s, reopen) => {
      const names = [['Sent Items'], ['Entwürfe'], ['日本語'], ['A & B'], ['Work', 'Q3', '2024'], ['emoji 📬']];
      for (const n of names) await s.createMailbox(n);
      await s.saveMessages(['Work', 'Q3', '2024'], [req(message('deep'))]);
      const listed = (await (await reopen()).listMailboxes()).mailboxes.map((m) => m.name.join('\u0000'));
      for (const n of names) assert.ok(listed.includes(n.join('\u0000')), `${n.join('/')} is listed`);
      const status = await s.mailboxStatus(['Work', 'Q3', '2024']);
      assert.equal(status?.messages, 1);
    });

    test('create with a given GUID and UIDVALIDITY, then update', async (s) => {
      const st = await s.createMailbox(['Archive'], { guid: '0123456789abcdef0123456789abcdef', uidValidity: 12345 });
      assert.equal(st.guid, '0123456789abcdef0123456789abcdef');
      assert.equal(st.uidValidity, 12345);
      const up = await s.updateMailbox(['Archive'], { minUidNext: 100 });
      assert.equal(up.uidNext, 100);
      const [saved] = await s.saveMessages(['Archive'], [req(message('after'))]);
      assert.equal(saved!.uid, 100);
      await assert.rejects(s.createMailbox(['Archive']), (e: unknown) => e instanceof MailferryError && e.kind === 'exists');
    });

    test('rename keeps the GUID and the messages, and is logged', async (s) => {
      const st = await s.createMailbox(['Old']);
      await s.createMailbox(['Old', 'Child']);
      await s.saveMessages(['Old'], [req(message('kept'))]);
      await s.renameMailbox(['Old'], ['New Name']);
      const list = await s.listMailboxes();
      const moved = list.mailboxes.find((m) => m.name.join('/') === 'New Name');
      assert.equal(moved?.guid, st.guid);
      assert.equal(moved?.messages, 1);
      assert.ok(list.mailboxes.some((m) => m.name.join('/') === 'New Name/Child'), 'children move along');
      assert.ok(!list.mailboxes.some((m) => m.name[0] === 'Old'));
      assert.ok(list.changes.some((c) => c.type === 'rename' && c.guid === st.guid && c.oldName.join('/') === 'Old'));
    });

    test('delete removes the mailbox and logs its GUID', async (s) => {
      const st = await s.createMailbox(['Gone']);
      await s.saveMessages(['Gone'], [req(message('bye'))]);
      await s.deleteMailbox(['Gone']);
      const list = await s.listMailboxes();
      assert.ok(!list.mailboxes.some((m) => m.guid === st.guid));
      assert.ok(list.changes.some((c) => c.type === 'delete' && c.guid === st.guid));
      assert.equal(await s.mailboxStatus(['Gone']), undefined);
      await assert.rejects(s.getMessages(['Gone']), (e: unknown) => e instanceof MailferryError && e.kind === 'notfound');
    });

    test('subscriptions are kept and logged', async (s, reopen) => {
      await s.createMailbox(['Lists']);
      await s.setSubscribed(['Lists'], true);
      await s.setSubscribed(['INBOX'], true);
      let list = await (await reopen()).listMailboxes();
      assert.equal(list.mailboxes.find((m) => m.name[0] === 'Lists')?.subscribed, true);
      await s.setSubscribed(['Lists'], false);
      list = await s.listMailboxes();
      assert.equal(list.mailboxes.find((m) => m.name[0] === 'Lists')?.subscribed, false);
      assert.ok(list.changes.some((c) => c.type === 'unsubscribe' && c.name[0] === 'Lists'));
    });

    test('a second read without changes reports nothing new', async (s) => {
      await s.saveMessages(['INBOX'], [req(message('still'))]);
      const a = await s.getMessages(['INBOX']);
      const b = await s.getMessages(['INBOX'], a.highestModseq);
      assert.equal(b.highestModseq, a.highestModseq);
      assert.deepEqual(b.messages, []);
      assert.deepEqual(b.expunged, []);
    });

    test('unknown mailbox and UID give not-found errors', async (s) => {
      await assert.rejects(s.getMessages(['Nope']), (e: unknown) => e instanceof MailferryError && e.kind === 'notfound' && /Nope/.test(e.message));
      await assert.rejects(s.openMessage(['INBOX'], 42), (e: unknown) => e instanceof MailferryError && /42/.test(e.message));
      assert.equal(await s.mailboxStatus(['Nope']), undefined);
    });

    test('all system flags round-trip', async (s) => {
      const flags: SystemFlag[] = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
      const [saved] = await s.saveMessages(['INBOX'], [req(message('flags'), { flags })]);
      const m = (await s.getMessages(['INBOX'])).messages.find((x) => x.uid === saved!.uid)!;
      assert.deepEqual([...m.flags].sort(), [...flags].sort());
    });

    test('header hashes depend on Date and Message-ID only; adopted GUIDs stick', async (s, reopen) => {
      const [a, b, c] = await s.saveMessages(['INBOX'], [
        req(message('same', 'body one\n')),
        req(message('same', 'a different body\n', 'X-Extra: yes\n')),
        req(message('other')),
      ]);
      const hashes = await s.messageHashes(['INBOX'], [a!.uid, b!.uid, c!.uid, 999]);
      assert.equal(hashes.size, 3, 'a UID that does not exist is left out');
      assert.match(hashes.get(a!.uid)!, /^[0-9a-f]{32}$/);
      assert.equal(hashes.get(a!.uid), hashes.get(b!.uid));
      assert.notEqual(hashes.get(a!.uid), hashes.get(c!.uid));
      if (s.adoptGuids) {
        await s.adoptGuids(['INBOX'], [{ uid: c!.uid, guid: 'feedfacefeedfacefeedfacefeedface' }]);
        const again = await reopen();
        const m = (await again.getMessages(['INBOX'])).messages.find((x) => x.uid === c!.uid)!;
        assert.equal(m.guid, 'feedfacefeedfacefeedfacefeedface');
      } else {
        assert.equal(s.nativeGuids, true, 'a store without native GUIDs must be able to adopt them');
      }
    });

    // Optional: without it an incremental sync filters a whole listing.
    const ofTitle = 'the messages of some UIDs and every copy of some GUIDs are what a whole listing holds of them';
    it(ofTitle, { skip: skipped.get(ofTitle) ?? false }, async (t) => {
      const { store: s, cleanup } = await target.open();
      try {
        if (!s.getMessagesOf) {
          t.skip('the store reads no messages in part');
          return;
        }
        const saved = await s.saveMessages(['INBOX'], [req(message('one')), req(message('two')), req(message('three')), req(message('four'))]);
        // A second copy of one GUID, where the store keeps the GUIDs it is given.
        if (s.nativeGuids && !s.assignsOwnUids) await s.saveMessages(['INBOX'], [req(message('three'), { guid: saved[2]!.guid })]);
        await s.updateFlags(['INBOX'], [{ uid: saved[1]!.uid, flags: ['\\Flagged'], keywords: ['$Work'] }]);
        const whole = await s.getMessages(['INBOX']);
        const uids = new Set([saved[1]!.uid, 999_999]);
        const guids = new Set([saved[2]!.guid, 'no-such-guid']);
        const got = await s.getMessagesOf(['INBOX'], { uids, guids });
        assert.deepEqual(
          got.messages,
          whole.messages.filter((m) => uids.has(m.uid) || guids.has(m.guid)),
        );
        assert.ok(got.messages.length >= 2);
        assert.deepEqual([got.uidValidity, got.uidNext, got.highestModseq], [whole.uidValidity, whole.uidNext, whole.highestModseq]);
        const none = await s.getMessagesOf(['INBOX'], { uids: new Set(), guids: new Set() });
        assert.deepEqual(none.messages, []);
      } finally {
        await s.close();
        await cleanup();
      }
    });

    // Optional: a store that keeps no clock for flag changes declares so by lacking the method.
    const timesTitle = 'flag change times follow flag changes, by the machine clock';
    it(timesTitle, { skip: skipped.get(timesTitle) ?? false }, async (t) => {
      const { store: s, cleanup } = await target.open();
      try {
        if (!s.flagChangeTimes) {
          t.skip('the store keeps no flag change times');
          return;
        }
        const start = Date.now();
        const [a, b] = await s.saveMessages(['INBOX'], [req(message('early')), req(message('late'))]);
        const before = await s.flagChangeTimes(['INBOX'], [a!.uid, b!.uid, 999]);
        assert.deepEqual([...before.keys()].sort((x, y) => x - y), [a!.uid, b!.uid], 'an unknown UID is left out');
        for (const ms of before.values()) assert.ok(ms >= start - 1000 && ms <= Date.now() + 1000, `${ms} is a time of this run`);
        // Timestamps move at the kernel's clock tick, not every millisecond.
        await new Promise((resolve) => setTimeout(resolve, 50));
        await s.updateFlags(['INBOX'], [{ uid: b!.uid, flags: ['\\Seen'], keywords: [] }]);
        const after = await s.flagChangeTimes(['INBOX'], [a!.uid, b!.uid]);
        assert.equal(after.get(a!.uid), before.get(a!.uid), 'an untouched message keeps its time');
        assert.ok(after.get(b!.uid)! > before.get(b!.uid)!, 'a flag change moves the time');
        assert.ok(after.get(b!.uid)! > after.get(a!.uid)!);
      } finally {
        await s.close();
        await cleanup();
      }
    });
  });
}
