/**
 * Peers that lie: a server sending names with '..', bodies shorter or longer than they said,
 * data past its credit, frames of gigabytes, random frames, or nothing at all; a client sending
 * names that leave the store and bodies that lie. Each gets a clean error and a closed
 * connection: no crash, no hang, no file outside the store, no half-written message.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { MailferryError } from '../../src/model/errors.js';
import { FrameType, u32Payload } from '../../src/remote/frame-codec.js';
import { ProtocolError } from '../../src/remote/protocol-error.js';
import { RemoteStore } from '../../src/remote/remote-store.js';
import { serveStore } from '../../src/remote/store-server.js';
import { openStore } from '../../src/storage/open-store.js';
import { runBackup } from '../../src/sync/backup.js';
import { message } from '../contract/store-contract.js';
import { duplexPair } from './duplex-pair.js';
import { INBOX_STATUS, openReply, ScriptedPeer } from './scripted-peer.js';

type Script = (peer: ScriptedPeer, op: string, id: number, args: Record<string, unknown>) => void;

/** A RemoteStore talking to a server that follows `script` for every request but open. */
async function hostileServer(script: Script, timeoutMs = 2000): Promise<{ store: RemoteStore; peer: ScriptedPeer }> {
  const [client, server] = duplexPair();
  const peer = new ScriptedPeer(server);
  peer.onFrame = (f) => {
    if (f.type !== FrameType.Request) return;
    const o = JSON.parse(f.payload.toString()) as Record<string, unknown>;
    if (o.op === 'open') peer.send(FrameType.Reply, f.id, openReply());
    else script(peer, String(o.op), f.id, o);
  };
  const store = await RemoteStore.connect(client, { label: 'remote evil', location: 'remote:evil', open: { create: false, force: false, lockSeconds: 1, runLock: false }, compress: false, timeoutMs });
  return { store, peer };
}

/** Answers the listing calls truthfully-looking for one INBOX with one message of `size` bytes. */
function listing(peer: ScriptedPeer, op: string, id: number, size: number): boolean {
  if (op === 'listMailboxes') peer.send(FrameType.Reply, id, { separator: '.', mailboxes: [INBOX_STATUS], changes: [] });
  else if (op === 'mailboxStatus') peer.send(FrameType.Reply, id, { status: INBOX_STATUS });
  else if (op === 'getPairState') peer.send(FrameType.Reply, id, { state: [] });
  else if (op === 'getMessages') {
    peer.send(FrameType.Reply, id, { uidValidity: INBOX_STATUS.uidValidity, uidNext: 2, highestModseq: 5, incremental: false, messages: [[1, 'msg1', 0, 5, 1700000000000, size, []]], expunged: [] });
  } else return false;
  return true;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) walk(join(d, e.name), r);
    }
  };
  walk(dir, '');
  return out.sort();
}

async function messagesIn(location: string): Promise<number> {
  const s = await openStore(location, { fsync: false, warn: () => {} });
  try {
    return (await s.getMessages(['INBOX'])).messages.length;
  } finally {
    await s.close();
  }
}

describe('hostile server', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-hostile-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** A fresh local destination inside its own directory, so anything written beside it shows. */
  async function destination() {
    const root = join(dir, `case${++n}`);
    const location = `maildir:${join(root, 'dst')}`;
    const store = await openStore(location, { create: true, fsync: false, warn: () => {} });
    return { root, location, store };
  }

  it("a mailbox named '..' is refused before anything is created", async () => {
    const { root, store } = await destination();
    const { store: evil } = await hostileServer((peer, op, id) => {
      if (op === 'listMailboxes') {
        peer.send(FrameType.Reply, id, { separator: '/', mailboxes: [INBOX_STATUS, { ...INBOX_STATUS, guid: 'f'.repeat(32), name: ['..', 'escape'] }], changes: [] });
      } else listing(peer, op, id, 10);
    });
    await assert.rejects(runBackup(evil, store), (e: unknown) => e instanceof ProtocolError && e.exitCode === 65 && /remote evil/.test(e.message) && /'\.\.'/.test(e.message));
    await store.close();
    await evil.close();
    assert.ok(!existsSync(join(root, 'escape')));
    assert.deepEqual(readdirSync(root), ['dst']);
  });

  for (const [what, claim, send] of [
    ['shorter than it said', 100, 50],
    ['longer than it said', 10, 50],
  ] as const) {
    it(`a body ${what} fails the run and leaves no message behind`, async () => {
      const { location, store } = await destination();
      const { store: evil } = await hostileServer((peer, op, id) => {
        if (listing(peer, op, id, claim)) return;
        if (op === 'openMessage') {
          peer.send(FrameType.Reply, id, {});
          peer.send(FrameType.Data, id, Buffer.from(message('lie').subarray(0, send)));
          peer.send(FrameType.End, id, { bytes: claim });
        }
      });
      await assert.rejects(runBackup(evil, store), (e: unknown) => e instanceof MailferryError && e.exitCode === 65);
      await store.close();
      await evil.close();
      assert.equal(await messagesIn(location), 0);
      const dst = location.slice('maildir:'.length);
      assert.deepEqual([...readdirSync(join(dst, 'cur')), ...readdirSync(join(dst, 'new')), ...readdirSync(join(dst, 'tmp'))], []);
    });
  }

  it('data past the credit given is a protocol error', async () => {
    const { store } = await destination();
    const { store: evil } = await hostileServer((peer, op, id) => {
      if (listing(peer, op, id, 5_000_000)) return;
      if (op === 'openMessage') {
        peer.send(FrameType.Reply, id, {});
        for (let i = 0; i < 80; i++) peer.send(FrameType.Data, id, Buffer.alloc(64 * 1024, 'x'));
      }
    });
    await assert.rejects(runBackup(evil, store), (e: unknown) => e instanceof ProtocolError && /allowed/.test(e.message));
    await store.close();
    await evil.close();
  });

  it('a frame announcing 4 GB is refused from its header; memory stays flat', async () => {
    const heap = process.memoryUsage().heapUsed;
    const { store: evil } = await hostileServer((peer, _op, id) => {
      const head = Buffer.alloc(9);
      head.writeUInt8(FrameType.Reply, 0);
      head.writeUInt32BE(id, 1);
      head.writeUInt32BE(0xfffffff0, 5);
      peer.raw(head);
      peer.raw(Buffer.alloc(1024 * 1024));
    });
    await assert.rejects(evil.listMailboxes(), (e: unknown) => e instanceof ProtocolError && /limit/.test(e.message));
    await evil.close();
    assert.ok(process.memoryUsage().heapUsed - heap < 64 * 1024 * 1024);
  });

  it('a server asking for a million messages of a save gets no more than 256 bodies at once', async () => {
    let items = 0;
    const { store: evil, peer } = await hostileServer((p, op, id) => {
      if (op === 'saveMessages') p.send(FrameType.Pull, id, u32Payload(1_000_000));
    }, 60_000);
    const counting = (async function* () {
      for (let i = 0; i < 1000; i++) {
        yield { flags: [], keywords: [], receivedDate: 0, body: () => Readable.from([Buffer.alloc(100 * 1024, 'x')]) };
      }
    })();
    const seen = () => items;
    const origOnFrame = peer.onFrame!;
    peer.onFrame = (f) => {
      if (f.type === FrameType.Item) items++;
      origOnFrame(f);
    };
    const saving = evil.saveMessages(['INBOX'], counting).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 800));
    // 256 bodies being sent, and the message whose body waits for one of them to finish.
    assert.ok(seen() >= 200 && seen() <= 257, `${seen()} messages sent`);
    peer.close();
    assert.ok((await saving) instanceof MailferryError);
    await evil.close();
  });

  it('a server that says nothing fails the call after the stall timeout (75)', async () => {
    const started = Date.now();
    const { store: evil } = await hostileServer(() => {}, 300);
    await assert.rejects(evil.listMailboxes(), (e: unknown) => e instanceof MailferryError && e.exitCode === 75 && /stalled/.test(e.message));
    assert.ok(Date.now() - started < 5000);
    await evil.close();
  });

  it('random frames in answer: a value or a MailferryError, never a crash or a hang (fast-check)', async () => {
    const frameArb = fc.record({
      type: fc.integer({ min: 1, max: 12 }),
      sameId: fc.boolean(),
      otherId: fc.nat({ max: 50 }),
      payload: fc.oneof(
        fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
        fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
        fc.constant(Buffer.from(JSON.stringify({ separator: '.', mailboxes: [], changes: [] }))),
        fc.constant(u32Payload(7)),
      ),
    }, { noNullPrototype: true });
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { maxLength: 8 }), fc.constantFrom('listMailboxes', 'getMessages', 'openMessage', 'expunge'), async (frames, call) => {
        const { store: evil } = await hostileServer((peer, _op, id) => {
          for (const f of frames) {
            try {
              peer.send(f.type as FrameType, f.sameId ? id : f.otherId, f.payload);
            } catch {
              // a type the encoder will not write: skip it
            }
          }
          peer.close();
        }, 60_000);
        const run = async () => {
          if (call === 'listMailboxes') return evil.listMailboxes();
          if (call === 'getMessages') return evil.getMessages(['INBOX']);
          if (call === 'expunge') return evil.expunge(['INBOX'], [1, 2]);
          const body = await evil.openMessage(['INBOX'], 1);
          for await (const _ of body) void _;
          return undefined;
        };
        // Hanging is failing: the peer closed its side, so every call must be over well before this.
        let deadline: NodeJS.Timeout | undefined;
        const hang = new Promise<never>((_, reject) => (deadline = setTimeout(() => reject(new Error(`${call} hung`)), 3000)));
        try {
          await Promise.race([run(), hang]);
        } catch (err) {
          assert.ok(err instanceof MailferryError, String(err));
        }
        await Promise.race([evil.close(), hang]).catch((err: unknown) => assert.ok(err instanceof MailferryError, String(err)));
        clearTimeout(deadline);
      }),
      { numRuns: 300 },
    );
  });
});

describe('hostile client', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailferry-hostile-client-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function served(name: string) {
    const root = join(dir, name);
    const location = `maildir:${join(root, 'Maildir')}`;
    const [client, server] = duplexPair();
    const done = serveStore(server, {
      label: 'evil client',
      compress: false,
      open: async (req) => ({ store: await openStore(location, { create: req.create, fsync: false, warn: () => {} }), location }),
    });
    const peer = new ScriptedPeer(client);
    peer.send(FrameType.Request, 1, { op: 'open', create: true, force: false, lockSeconds: 1, runLock: false });
    await peer.expect(FrameType.Reply);
    return { root, location, peer, done };
  }

  it("names that leave the store are refused and the connection closed", async () => {
    const { root, peer, done } = await served('names');
    peer.send(FrameType.Request, 2, { op: 'createMailbox', name: ['..', '..', 'escape'] });
    await assert.rejects(done, (e: unknown) => e instanceof ProtocolError && /'\.' and '\.\.'/.test(e.message));
    assert.deepEqual(filesUnder(root).filter((f) => !f.startsWith('Maildir')), []);
    assert.ok(!existsSync(join(dir, 'escape')));
  });

  for (const [what, sendBytes, claim] of [
    ['claims more than it sent', 40, 80],
    ['sends more than it claims', 40, 20],
    ['goes away mid-body', 40, undefined],
  ] as const) {
    it(`a save whose body ${what} stores nothing`, async () => {
      const { location, peer, done } = await served(what.replace(/\W/g, '-'));
      peer.send(FrameType.Request, 2, { op: 'saveMessages', name: ['INBOX'] });
      await peer.expect(FrameType.Pull);
      peer.send(FrameType.Item, 2, { flags: 0, keywords: [], receivedDate: 1700000000000, stream: 3 });
      peer.send(FrameType.Data, 3, message('evil').subarray(0, sendBytes));
      if (claim === undefined) peer.stream.destroy();
      else {
        peer.send(FrameType.End, 3, { bytes: claim });
        peer.send(FrameType.ItemsEnd, 2);
      }
      if (claim === undefined) await done.catch((e: unknown) => assert.ok(e instanceof MailferryError, String(e)));
      else await assert.rejects(done, (e: unknown) => e instanceof ProtocolError && new RegExp(`said it sent ${claim} bytes, but ${sendBytes} arrived`).test(e.message));
      assert.equal(await messagesIn(location), 0);
    });
  }

  it('more messages than the server asked for close the connection', async () => {
    const { location, peer, done } = await served('unasked');
    peer.send(FrameType.Request, 2, { op: 'saveMessages', name: ['INBOX'] });
    const pull = await peer.expect(FrameType.Pull);
    const asked = pull.payload.readUInt32BE(0);
    for (let i = 0; i <= asked; i++) peer.send(FrameType.Item, 2, { flags: 0, keywords: [], receivedDate: 0, stream: 10 + i });
    await assert.rejects(done, (e: unknown) => e instanceof ProtocolError && /more messages than were asked for/.test(e.message));
    assert.equal(await messagesIn(location), 0);
  });

  it('data for a stream never opened, and unknown frame types, close the connection', async () => {
    const a = await served('unknown-stream');
    a.peer.send(FrameType.Data, 99, Buffer.from('x'));
    await assert.rejects(a.done, ProtocolError);
    const b = await served('unknown-type');
    const head = Buffer.alloc(9);
    head.writeUInt8(200, 0);
    b.peer.raw(head);
    await assert.rejects(b.done, (e: unknown) => e instanceof ProtocolError && /unknown frame type 200/.test(e.message));
  });
});
