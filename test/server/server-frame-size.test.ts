/**
 * server_max_frame_size against a real `mailferry server` over TLS: a raw client's frame of
 * exactly the limit is taken (answered like any other), one byte over ends that session with
 * a log line naming the limit, and the server goes on serving a normal client. Values outside
 * its bounds are refused with a one-line configuration error (78) before anything listens.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FRAME_HEADER_BYTES, FrameDecoder, FrameType, MAX_FRAME_PAYLOAD, type Frame } from '../../src/remote/frame-codec.js';
import { corpusMessages } from '../support/corpus.js';
import { authenticate, rawConnect } from './raw-client.js';
import { errorLines, mf, startServer, type ServerProcess } from './server-harness.js';
import { fill, mailferryView, makeServerSite, type ServerSite } from './server-site.js';

const LIMIT = 1536 * 1024;

/** A request whose JSON, padded with spaces, is exactly `size` bytes (made by hand: encodeFrame keeps to what this version sends). */
function paddedRequest(id: number, size: number): Buffer {
  const json = Buffer.from(JSON.stringify({ op: 'listMailboxes' }));
  const frame = Buffer.alloc(FRAME_HEADER_BYTES + size, 0x20);
  frame.writeUInt8(FrameType.Request, 0);
  frame.writeUInt32BE(id, 1);
  frame.writeUInt32BE(size, 5);
  json.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** An authenticated session past the hello, and the frames the server sends, as they come. */
async function session(site: ServerSite, port: number, user: string): Promise<{ sock: Socket; frames: Frame[]; closed: Promise<void>; next(): Promise<Frame> }> {
  const sock = await rawConnect(port, { ca: site.certs.ca });
  sock.on('error', () => {});
  const ex = await authenticate(sock, user, readFileSync(site.secretFile).subarray(0, -1));
  assert.equal(ex.result.ok, true, JSON.stringify(ex.result));
  const rest = ex.reader.detach();
  const frames: Frame[] = [];
  const waiters: (() => void)[] = [];
  const decoder = new FrameDecoder();
  let input = rest;
  let helloDone = false;
  const take = (chunk: Buffer) => {
    input = Buffer.concat([input, chunk]);
    if (!helloDone) {
      const nl = input.indexOf(0x0a);
      if (nl < 0) return;
      assert.match(input.subarray(0, nl).toString('latin1'), /^MAILFERRY\t1\./);
      input = input.subarray(nl + 1);
      helloDone = true;
    }
    frames.push(...decoder.push(input));
    input = Buffer.alloc(0);
    for (const w of waiters.splice(0)) w();
  };
  sock.on('data', take);
  if (rest.length > 0) take(Buffer.alloc(0));
  sock.resume();
  sock.write('MAILFERRY\t1.0\t\n');
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  let seen = 0;
  const next = async (): Promise<Frame> => {
    while (frames.length <= seen) {
      const more = new Promise<void>((r) => waiters.push(r));
      await Promise.race([more, closed.then(() => Promise.reject(new Error('the server closed the connection')))]);
    }
    return frames[seen++]!;
  };
  return { sock, frames, closed, next };
}

describe('mailferry server: server_max_frame_size', { timeout: 120_000 }, () => {
  let site: ServerSite;
  let server: ServerProcess;

  before(async () => {
    site = makeServerSite(['frames', 'normal']);
    await fill(site, site.local('normal'), corpusMessages(40));
    server = await startServer(site.serverArgs, { settings: [...site.serverSettings, `server_max_frame_size=${LIMIT / 1024}k`] });
  });
  after(async () => {
    const end = await server?.stop();
    site?.cleanup();
    assert.deepEqual(end, { code: 0, signal: null });
  });

  it('a frame of exactly the limit is taken; one byte more ends the session with a log line naming the limit', async () => {
    const s = await session(site, server.port, 'frames');
    s.sock.write(paddedRequest(1, LIMIT));
    // Answered as any request before `open` is: the frame itself was taken whole.
    const answer = await s.next();
    assert.equal(answer.id, 1);
    assert.equal(answer.type, FrameType.Error);
    assert.match(answer.payload.toString(), /not open yet/);
    // The same session, a byte over: refused from its header, and the connection closed.
    const mark = server.lines.length;
    s.sock.write(paddedRequest(2, LIMIT + 1));
    await s.closed;
    const line = await server.waitForLine(/ user=frames .*result=/, { from: mark });
    console.error(line, Date.now());
    assert.match(line, /result="failed: .*Request frame 2 announces 1572865 bytes, more than the 1572864 byte limit \(server_max_frame_size\)"/);
    assert.equal(s.frames.length, 1, 'no answer to the refused frame');
  });

  it('the server still serves: a normal backup right after, and mail alike on both ends', async () => {
    const r = await mf(['backup', site.local('normal'), site.tcps(server.port, 'normal')], { settings: site.clientSettings });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await mailferryView(site, site.local('normal')), await mailferryView(site, site.tcps(server.port, 'normal')));
    assert.equal(server.child.exitCode, null);
  });

  it('raised, the limit takes what the default refuses; the default is the largest frame a client of this version sends', async () => {
    const s = await session(site, server.port, 'frames');
    s.sock.write(paddedRequest(1, MAX_FRAME_PAYLOAD + 1));
    assert.equal((await s.next()).type, FrameType.Error);
    s.sock.destroy();
    const plain = await startServer(site.serverArgs, { settings: site.serverSettings });
    try {
      const d = await session(site, plain.port, 'frames');
      d.sock.write(paddedRequest(1, MAX_FRAME_PAYLOAD));
      assert.equal((await d.next()).type, FrameType.Error);
      d.sock.write(paddedRequest(2, MAX_FRAME_PAYLOAD + 1));
      await d.closed;
      assert.match(await plain.waitForLine(/ user=frames .*result=/), /more than the 1048576 byte limit \(server_max_frame_size\)/);
    } finally {
      await plain.stop();
    }
  });

  for (const [value, why] of [['512k', 'below what a client sends'], ['17M', 'over the cap'], ['lots', 'not a size'], ['1.5M', 'not whole']] as const) {
    it(`-o server_max_frame_size=${value} (${why}) is a usage error (64) before anything listens`, async () => {
      const r = await mf(['-o', `server_max_frame_size=${value}`, 'server', ...site.serverArgs], { settings: site.serverSettings });
      assert.equal(r.code, 64, r.stderr);
      const lines = errorLines(r);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`-o server_max_frame_size=${value.replace('.', '\\.')}: invalid server_max_frame_size = "${value.replace('.', '\\.')}": expected a size from 1048576 \\(1M\\) to 16777216 \\(16M\\) bytes`));
    });
  }

  it('in the configuration file, a value below the bound is a configuration error (78) naming the file', async () => {
    const file = join(site.dir, 'mailferry.toml');
    writeFileSync(file, 'server_max_frame_size = 524288\n');
    const r = await mf(['-c', file, 'server', ...site.serverArgs], { settings: site.serverSettings });
    assert.equal(r.code, 78, r.stderr);
    assert.match(errorLines(r).join('\n'), /mailferry\.toml.*invalid server_max_frame_size = 524288: expected a size from 1048576/);
  });
});
