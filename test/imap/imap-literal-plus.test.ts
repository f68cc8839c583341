/**
 * MULTIAPPEND with non-synchronizing literals (literal-plus.ts) against Dovecot: with LITERAL+
 * a batch goes out as one write, without waiting for a "+" per message, and every byte arrives;
 * without LITERAL+ (a Dovecot whose imap_capability leaves it out) the larger literals wait for
 * the server as before, and arrive just the same.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { appendBatch, type OutgoingMessage } from '../../src/storage/imap/imap-append.js';
import { startDovecot, type Dovecot } from '../support/dovecot.js';

/** Bodies that tempt a careless writer: a line that looks like a literal, 8-bit bytes, sizes around 4096 and 64 KiB, no final CRLF. */
function bodies(): Buffer[] {
  const text = (n: number, tag: string) => {
    const head = `Subject: ${tag}\r\nMessage-ID: <${tag}@literal-plus>\r\n\r\n{12}\r\n* 1 FETCH (UID 9)\r\n`;
    const b = Buffer.concat([Buffer.from(head), Buffer.alloc(Math.max(0, n - head.length), 'abc\u00e9\r\n', 'latin1')]).subarray(0, Math.max(n, head.length));
    // A bare CR at the very end is not kept by Dovecot: not what is tested here.
    if (b.at(-1) === 0x0d) b[b.length - 1] = 0x2e;
    return b;
  };
  return [text(4096, 'at-limit'), text(4097, 'over-limit'), text(70_000, 'two-chunks'), Buffer.from('Subject: tiny\r\n\r\nx'), text(300_000, 'large')];
}

async function connect(d: Dovecot, user: string): Promise<ImapFlow> {
  const c = new ImapFlow({ host: '127.0.0.1', port: d.port, secure: false, doSTARTTLS: false, auth: { user, pass: d.users[user]! }, logger: false });
  await c.connect();
  return c;
}

/** Every write imapflow makes to the socket, as sent. */
function recordWrites(c: ImapFlow): Buffer[] {
  const frames: Buffer[] = [];
  const inner = c as unknown as { write(chunk: Buffer | string): unknown };
  const write = inner.write;
  inner.write = function (this: unknown, chunk: Buffer | string) {
    frames.push(Buffer.isBuffer(chunk) ? Buffer.from(chunk) : Buffer.from(chunk, 'binary'));
    return write.call(this, chunk);
  };
  return frames;
}

async function storedBodies(c: ImapFlow, uids: number[]): Promise<Buffer[]> {
  await c.mailboxOpen('INBOX');
  const out: Buffer[] = [];
  for (const uid of uids) {
    const m = await c.fetchOne(String(uid), { source: true }, { uid: true });
    out.push(m ? m.source! : Buffer.alloc(0));
  }
  await c.mailboxClose();
  return out;
}

const outgoing = (wire: Buffer, i: number): OutgoingMessage => ({ wire, flags: i % 2 ? ['\\Seen'] : [], receivedDate: Date.UTC(2020, 0, i + 1) });

describe('MULTIAPPEND literals (Dovecot)', { timeout: 60_000 }, () => {
  let plus: Dovecot;
  let plain: Dovecot;
  before(async () => {
    plus = await startDovecot({ users: ['a'], imap: true });
    plain = await startDovecot({ users: ['a'], imap: true, extraConfig: 'imap_capability = IMAP4rev1 MULTIAPPEND UIDPLUS\n' });
  });
  after(async () => {
    await plus?.stop();
    await plain?.stop();
  });

  it('with LITERAL+: one write for the whole batch, every literal non-synchronizing, every byte stored', async () => {
    const c = await connect(plus, 'a');
    try {
      assert.ok(c.capabilities.has('LITERAL+'));
      const sent = bodies();
      const frames = recordWrites(c);
      const uids = await appendBatch(c, 'INBOX', sent.map(outgoing));
      assert.deepEqual(uids, [1, 2, 3, 4, 5]);
      const command = frames.filter((f) => / APPEND /.test(f.subarray(0, 40).toString('latin1')));
      assert.equal(command.length, 1, 'the APPEND is one write');
      const markers = [...command[0]!.toString('latin1').matchAll(/\{(\d+)(\+?)\}\r\n/g)].map((m) => `${m[1]}${m[2]}`);
      for (const b of sent) assert.ok(markers.includes(`${b.length}+`), `a non-synchronizing {${b.length}+} in ${markers.join(' ')}`);
      // Nothing but the final CRLF (written apart after a large command) follows: no literal was held back for a "+".
      const rest = frames.slice(frames.indexOf(command[0]!) + 1).map((f) => f.toString('latin1'));
      assert.ok(rest.length === 0 || (rest.length === 1 && rest[0] === '\r\n'), `writes after the command: ${rest.map((r) => r.length).join(', ')} bytes`);
      const stored = await storedBodies(c, uids!);
      assert.ok(stored.every((b, i) => b.equals(sent[i]!)), `every body stored byte for byte: ${stored.map((b, i) => `${b.length}/${sent[i]!.length}`).join(' ')}`);
    } finally {
      await c.logout();
    }
  });

  it('without LITERAL+ (nor LITERAL-): every literal waits for the server, and the batch is stored the same', async () => {
    const c = await connect(plain, 'a');
    try {
      assert.equal(c.capabilities.has('LITERAL+'), false);
      const sent = bodies();
      const frames = recordWrites(c);
      const uids = await appendBatch(c, 'INBOX', sent.map(outgoing));
      assert.equal(uids?.length, sent.length);
      const markers = [...Buffer.concat(frames).toString('latin1').matchAll(/\{(\d+)(\+?)\}\r\n/g)].map((m) => `${m[1]}${m[2]}`);
      for (const b of sent) assert.ok(markers.includes(String(b.length)), `a synchronizing {${b.length}} in ${markers.join(' ')}`);
      assert.ok(frames.length > sent.length, 'sent in parts, one per "+"');
      const stored = await storedBodies(c, uids!);
      assert.ok(stored.every((b, i) => b.equals(sent[i]!)), `every body stored byte for byte: ${stored.map((b, i) => `${b.length}/${sent[i]!.length}`).join(' ')}`);
    } finally {
      await c.logout();
    }
  });

  it('a command sent after a LITERAL+ APPEND is sent by imapflow as before', async () => {
    const c = await connect(plus, 'a');
    try {
      await appendBatch(c, 'INBOX', [outgoing(bodies()[1]!, 0)]);
      // An ordinary APPEND (imapflow's own) and a SELECT on the same connection still work.
      const r = await c.append('INBOX', Buffer.from('Subject: after\r\n\r\n' + 'y'.repeat(5000)));
      assert.ok(r && typeof r === 'object' && r.uid! > 0);
      const box = await c.mailboxOpen('INBOX');
      assert.equal(box.exists, 7);
    } finally {
      await c.logout();
    }
  });
});
