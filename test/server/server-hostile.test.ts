/**
 * `mailferry server` against hostile clients: fuzzed ones (fast-check: random bytes, malformed
 * authentication lines, random and malformed frames before and after authenticating, lengths
 * of up to 4 GB, streams that stop in the middle of a frame) and a slowloris of 500 connections
 * that say nothing or stop halfway through a TLS handshake, kept up while a normal client
 * syncs. The server stays up, logs every connection, serves the normal client, and its memory
 * stays bounded.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeFrame, FrameType } from '../../src/remote/frame-codec.js';
import { corpusMessages } from '../support/corpus.js';
import { authenticate, rawConnect } from './raw-client.js';
import { mf, startServer, until, type ServerProcess } from './server-harness.js';
import { fill, mailferryView, makeServerSite, type ServerSite } from './server-site.js';

const MB = 1024;

describe('mailferry server against hostile clients', { timeout: 300_000 }, () => {
  let site: ServerSite;
  let server: ServerProcess;
  let baseRss: number;
  const secret = () => readFileSync(site.secretFile).subarray(0, -1);

  before(async () => {
    site = makeServerSite(['normal', 'fuzz']);
    server = await startServer(site.serverArgs, {
      settings: [...site.serverSettings, 'server_max_connections=100', 'server_auth_timeout=3', 'server_idle_timeout=3'],
    });
    await fill(site, site.local('normal'), corpusMessages(60));
    // Warm: a first session, so the baseline holds what any server holds after serving one.
    const r = await mf(['backup', site.local('normal'), site.tcps(server.port, 'normal')], { settings: site.clientSettings });
    assert.equal(r.code, 0, r.stderr);
    baseRss = server.rssKb();
  });
  after(async () => {
    const end = await server?.stop();
    site?.cleanup();
    assert.deepEqual(end, { code: 0, signal: null });
  });

  /** A normal client still gets its mail across, exactly. */
  async function normalClientWorks(): Promise<number> {
    const t0 = Date.now();
    const r = await mf(['sync', site.local('normal'), site.tcps(server.port, 'normal')], { settings: site.clientSettings });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await mailferryView(site, site.local('normal')), await mailferryView(site, site.tcps(server.port, 'normal')));
    return Date.now() - t0;
  }

  const frame = fc.oneof(
    // Any type, id and payload (most types are unknown or not a client's to send).
    fc.record({ type: fc.nat(12), id: fc.nat(), payload: fc.uint8Array({ maxLength: 300 }) }, { noNullPrototype: true }).map(({ type, id, payload }) => {
      const b = Buffer.alloc(9 + payload.length);
      b.writeUInt8(type, 0);
      b.writeUInt32BE(id, 1);
      b.writeUInt32BE(payload.length, 5);
      Buffer.from(payload).copy(b, 9);
      return b;
    }),
    // Requests that decode as frames but carry anything as their JSON.
    fc.tuple(fc.nat(50), fc.constantFrom('open', 'listMailboxes', 'getMessages', 'openMessage', 'saveMessages', 'deleteMailbox', 'nope'), fc.jsonValue()).map(([id, op, v]) =>
      encodeFrame(FrameType.Request, id, Buffer.from(JSON.stringify(typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...v, op } : { op, v }))),
    ),
    // A header announcing up to 4 GB.
    fc.tuple(fc.constantFrom(1, 3, 5, 10), fc.nat(), fc.integer({ min: 1024 * 1024 + 1, max: 0xffffffff })).map(([type, id, len]) => {
      const b = Buffer.alloc(9);
      b.writeUInt8(type, 0);
      b.writeUInt32BE(id, 1);
      b.writeUInt32BE(len, 5);
      return b;
    }),
    // A frame cut off halfway: the stream then stops.
    fc.uint8Array({ minLength: 1, maxLength: 200 }).map((p) => encodeFrame(FrameType.Data, 7, Buffer.from(p)).subarray(0, 9 + Math.floor(p.length / 2))),
  );

  const script = fc.record({
    tls: fc.boolean(),
    authenticate: fc.boolean(),
    hello: fc.constantFrom('MAILFERRY\t1.0\t\n', 'MAILFERRY\t1.0\tdeflate\n', 'MAILFERRY\t9.0\t\n', 'SSH-2.0-OpenSSH\n', ''),
    before: fc.oneof(fc.constant(Buffer.alloc(0)), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), fc.string({ maxLength: 100 }).map((s) => Buffer.from(`{"auth":1,"user":${JSON.stringify(s)}\n`))),
    frames: fc.array(frame, { maxLength: 6 }),
  }, { noNullPrototype: true });

  it('fuzzed clients: each gets a clean end and a log line; the server stays up and serves a normal client', async (t) => {
    const mark = server.lines.length;
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(script, async (s) => {
        runs++;
        let sock: Socket;
        try {
          sock = await rawConnect(server.port, { ...(s.tls ? { ca: site.certs.ca } : {}), localAddress: '127.0.0.30' });
        } catch {
          return; // refused while the address is over its limit: a clean end too
        }
        const closed = new Promise<void>((r) => sock.on('close', () => r()));
        sock.on('error', () => {});
        sock.on('data', () => {});
        if (s.authenticate && s.tls) {
          const ex = await authenticate(sock, 'fuzz', secret()).catch(() => undefined);
          ex?.reader.detach();
          sock.resume();
        } else if (s.before.length > 0) {
          sock.write(s.before);
        }
        if (s.hello !== '') sock.write(s.hello);
        for (const f of s.frames) sock.write(f);
        await Promise.race([closed, sleep(250)]);
        sock.destroy();
      }),
      { numRuns: 40, seed: 20240521 },
    );
    assert.equal(server.child.exitCode, null, 'the server is up');
    await until(() => server.lines.slice(mark).filter((l) => / peer=127\.0\.0\.30:/.test(l.text)).length >= runs, `${runs} log lines`, 20_000);
    assert.ok(!server.lines.some((l) => /internal error/.test(l.text)), 'no internal error');
    await normalClientWorks();
    t.diagnostic(`server memory: ${baseRss} KiB before, ${server.rssKb()} KiB after ${runs} fuzzed clients`);
    assert.ok(server.rssKb() < baseRss + 100 * MB, `memory: ${server.rssKb()} KiB after, ${baseRss} KiB before`);
  });

  it('a session stopping mid-frame is ended by the idle timeout', async () => {
    const sock = await rawConnect(server.port, { ca: site.certs.ca });
    const ex = await authenticate(sock, 'fuzz', secret());
    assert.equal(ex.result.ok, true);
    ex.reader.detach();
    sock.resume();
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.write('MAILFERRY\t1.0\t\n');
    sock.write(encodeFrame(FrameType.Request, 1, Buffer.from(JSON.stringify({ op: 'listMailboxes' }))).subarray(0, 15));
    await closed;
    assert.match(await server.waitForLine(/ user=fuzz wait=\S+ result="ended: idle/), /result="ended: idle for 3 seconds/);
  });

  it('a slowloris of 500 connections, kept up: a normal client is served meanwhile, memory stays bounded', async (t) => {
    let stop = false;
    let opened = 0;
    const open = new Set<Socket>();
    let peakRss = 0;
    const attacker = async (i: number) => {
      const localAddress = `127.0.1.${(i % 50) + 1}`;
      while (!stop) {
        const sock = connect({ host: '127.0.0.1', port: server.port, localAddress });
        opened++;
        open.add(sock);
        sock.on('error', () => {});
        // Read (and drop) what comes, so the server's end of the connection is seen.
        sock.resume();
        sock.on('connect', () => {
          // Silent, or half a TLS ClientHello, or half an authentication line.
          if (i % 3 === 1) sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
          if (i % 3 === 2) sock.write('{"auth":1,"user":"slow');
        });
        await new Promise<void>((r) => sock.on('close', () => r()));
        open.delete(sock);
        await sleep(50);
      }
    };
    const attackers = Array.from({ length: 500 }, (_, i) => attacker(i));
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, server.rssKb())), 100);
    try {
      await until(() => opened >= 500, 'the first 500 connections');
      await sleep(500);
      const ms = await normalClientWorks();
      t.diagnostic(`a normal sync and two views took ${ms} ms under ${opened} attack connections so far`);
      assert.ok(ms < 30_000, `the normal client took ${ms} ms`);
      assert.equal(server.child.exitCode, null);
    } finally {
      stop = true;
      clearInterval(sampler);
    }
    // Everything the attack left open is closed within the authentication timeout.
    await until(() => open.size === 0, 'the attack connections to be closed', 10_000);
    await Promise.all(attackers);
    const mark = server.lines.length;
    server.child.kill('SIGHUP');
    const status = await server.waitForLine(/^mailferry server: status: /, { from: mark });
    assert.match(status, /connections=0 unauthenticated=0 sessions=0 /);
    const dropped = Number(/dropped_for_room=(\d+)/.exec(status)![1]);
    assert.ok(dropped > 0, 'room was made');
    t.diagnostic(`server memory: ${baseRss} KiB before, ${peakRss} KiB at the peak; ${dropped} connections dropped to make room`);
    assert.ok(peakRss < baseRss + 150 * MB, `memory: peak ${peakRss} KiB, ${baseRss} KiB before`);
    await normalClientWorks();
  });
});
