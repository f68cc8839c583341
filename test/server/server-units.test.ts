/**
 * The server's pure parts: tcp:/tcps: locations, --listen and the plaintext rule, the
 * connection table (the oldest unauthenticated connection makes room), the back-off (doubling,
 * capped, forgotten), the per-user turns (first come first served, a wait that runs out is 75,
 * a client that leaves gives up its place), which addresses count as one, and log values that
 * cannot break a line.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_SETTINGS } from '../../src/config/settings.js';
import { MailferryError } from '../../src/model/errors.js';
import { parseTcpLocation, tcpPeerName } from '../../src/remote/tcp-location.js';
import { AuthBackoff, FORGET_AFTER_MS } from '../../src/server/auth-backoff.js';
import { ConnectionTable, type Tracked } from '../../src/server/connection-table.js';
import { addressKey } from '../../src/server/peer-address.js';
import { connectionLine, logValue } from '../../src/server/server-log.js';
import { parseListen, serverConfigFrom } from '../../src/server/server-options.js';
import { UserLocks } from '../../src/server/user-locks.js';

const exit = (code: number) => (e: unknown) => e instanceof MailferryError && e.exitCode === code;

describe('tcp: and tcps: locations', () => {
  it('parse user, host, port and TLS options', () => {
    assert.deepEqual(parseTcpLocation('tcps:mail2.example.org'), { kind: 'remote', transport: 'tcps', raw: 'tcps:mail2.example.org', host: 'mail2.example.org' });
    assert.deepEqual(parseTcpLocation('tcp:alice@example.org@10.0.0.2:2000'), { kind: 'remote', transport: 'tcp', raw: 'tcp:alice@example.org@10.0.0.2:2000', user: 'alice@example.org', host: '10.0.0.2', port: 2000 });
    const l = parseTcpLocation('TCPS:[::1]:993?cafile=/etc/ca%20dir/ca.pem&cert=/c.pem&key=/k.pem');
    assert.equal(l.transport, 'tcps');
    assert.equal(l.host, '::1');
    assert.equal(l.cafile, '/etc/ca dir/ca.pem');
    assert.equal(tcpPeerName(l, 12346), 'tcps:[::1]:993');
    assert.equal(tcpPeerName(parseTcpLocation('tcp:h'), 12346), 'tcp:h:12346');
    assert.equal(parseTcpLocation('tcps:..%2Fx@h').user, '../x', 'the server, not the parser, judges user names');
  });

  it('refuse what is not one, as usage errors naming the problem', () => {
    for (const [bad, why] of [
      ['tcp:', /the host is empty/],
      ['tcp:h:0', /'0' is not a port/],
      ['tcp:h:65536', /not a port/],
      ['tcp:h:12ab', /not a port/],
      ['tcp:h?cafile=/x', /tcp: is plaintext and takes no TLS options/],
      ['tcps:h?ca=/x', /unknown option 'ca'/],
      ['tcps:h?cafile=', /cafile= needs a file/],
      ['tcps:h?cert=/c', /cert= and key= go together/],
      ['tcps:h?cafile=/a&cafile=/b', /given twice/],
      ['tcps:@h', /the user before @ is empty/],
      ['tcps:a%0Ab@h', /control characters/],
      ['tcps:[::1', /without '\]'/],
      ['tcps:[zz]:1', /not an IPv6 address/],
      ['tcps:a b', /not a host name/],
    ] as const) {
      assert.throws(() => parseTcpLocation(bad), (e: unknown) => exit(64)(e) && why.test((e as Error).message), bad);
    }
  });
});

describe('server options', () => {
  const s = { ...DEFAULT_SETTINGS };
  it('--listen forms', () => {
    assert.deepEqual(parseListen('127.0.0.1:2000', 1), { host: '127.0.0.1', port: 2000 });
    assert.deepEqual(parseListen('[::1]:2000', 1), { host: '::1', port: 2000 });
    assert.deepEqual(parseListen('mail.example.org', 7), { host: 'mail.example.org', port: 7 });
    assert.deepEqual(parseListen(':9', 7), { host: '*', port: 9 });
    assert.deepEqual(parseListen('*', 7), { host: '*', port: 7 });
    assert.throws(() => parseListen('::1:9', 1), /IPv6 address goes in \[ \]/);
    assert.throws(() => parseListen('h:x', 1), exit(64));
  });

  it('plaintext only on loopback unless forced; TLS files in pairs; settings as defaults of the options', () => {
    const secret = { secretFile: '/s' };
    assert.equal(serverConfigFrom({ ...secret, allowPlaintext: true, listen: ['127.0.0.1:1', '[::1]:1', 'localhost:1'] }, 't', s).allowPlaintext, true);
    assert.throws(() => serverConfigFrom({ ...secret, allowPlaintext: true, listen: ['127.0.0.1:1', '10.0.0.1:1'] }, 't', s), /10\.0\.0\.1 is not one/);
    assert.throws(() => serverConfigFrom({ ...secret, allowPlaintext: true }, 't', s), /every address is not one/);
    assert.equal(serverConfigFrom({ ...secret, forcePlaintext: true }, 't', s).allowPlaintext, true);
    assert.throws(() => serverConfigFrom({ ...secret }, 't', s), /needs a certificate/);
    assert.throws(() => serverConfigFrom({ ...secret, tlsKey: '/k' }, 't', s), /go together/);
    assert.throws(() => serverConfigFrom({ ...secret, allowPlaintext: true, clientCa: '/ca', listen: ['127.0.0.1'] }, 't', s), /--client-ca needs TLS/);
    const c = serverConfigFrom({}, undefined, { ...s, server_tls_cert: '/c', server_tls_key: '/k', server_client_ca: '/ca', server_secret_file: '/sf', server_port: 4000 });
    assert.deepEqual(c.tls, { cert: '/c', key: '/k', clientCa: '/ca' });
    assert.equal(c.secretFile, '/sf');
    assert.deepEqual(c.listen, [{ host: '*', port: 4000 }]);
    assert.equal(serverConfigFrom({ tlsCert: '/c2', tlsKey: '/k2', secretFile: '/sf2' }, undefined, { ...s, server_tls_cert: '/c', server_tls_key: '/k' }).tls?.cert, '/c2');
  });
});

function tracked(key: string): Tracked & { dropped?: string } {
  const t: Tracked & { dropped?: string } = { key, authenticated: false, drop: (r) => void (t.dropped = r) };
  return t;
}

describe('connection table', () => {
  it('limits each address, and makes room by dropping the oldest unauthenticated connection', () => {
    const table = new ConnectionTable({ maxConnections: 3, maxPerAddress: 2 });
    const [a1, a2, a3, b1, c1, d1] = ['a', 'a', 'a', 'b', 'c', 'd'].map(tracked);
    assert.ok(table.admit(a1!).ok);
    assert.ok(table.admit(a2!).ok);
    assert.deepEqual(table.admit(a3!), { ok: false, reason: '2 connections from this address already (server_max_connections_per_address)' });
    a1!.authenticated = true;
    assert.ok(table.admit(b1!).ok);
    assert.ok(table.admit(c1!).ok, 'full: a2, the oldest not authenticated, makes room');
    assert.match(a2!.dropped!, /make room/);
    assert.equal(a1!.dropped, undefined);
    assert.equal(table.size, 3);
    b1!.authenticated = true;
    c1!.authenticated = true;
    assert.deepEqual(table.admit(d1!), { ok: false, reason: '3 sessions already (server_max_connections)' });
    table.release(a1!);
    table.release(a1!);
    assert.ok(table.admit(d1!).ok);
    assert.equal(table.evicted, 1);
  });

  it('makes room from the address holding the most unauthenticated connections, its oldest first', () => {
    const table = new ConnectionTable({ maxConnections: 4, maxPerAddress: 10 });
    const lone = tracked('lone');
    const crowd = ['x', 'x', 'x'].map(tracked);
    for (const t of [lone, ...crowd]) assert.ok(table.admit(t).ok);
    const next = [tracked('y'), tracked('y'), tracked('z')];
    for (const t of next) assert.ok(table.admit(t).ok);
    assert.deepEqual([lone, ...crowd, ...next].map((t) => t.dropped !== undefined), [false, true, true, false, true, false, false], 'the crowd first, then y with two');
    assert.ok(table.admit(tracked('w')).ok);
    assert.notEqual(lone.dropped, undefined, 'with one each, the oldest goes');
  });

  it('never holds more than its limits, whatever comes and goes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(4), fc.nat(3)), { maxLength: 200 }), (ops) => {
        const table = new ConnectionTable({ maxConnections: 5, maxPerAddress: 2 });
        const live: (Tracked & { dropped?: string })[] = [];
        for (const [op, addr] of ops) {
          if (op <= 1) {
            const t = tracked(String(addr));
            if (table.admit(t).ok) live.push(t);
          } else if (op === 2 && live.length > 0) {
            live[addr % live.length]!.authenticated = true;
          } else if (live.length > 0) {
            table.release(live.splice(addr % live.length, 1)[0]!);
          }
          for (let i = live.length - 1; i >= 0; i--) if (live[i]!.dropped) live.splice(i, 1);
          assert.ok(table.size <= 5);
          assert.equal(table.size, live.length);
          const per = new Map<string, number>();
          for (const t of live) per.set(t.key, (per.get(t.key) ?? 0) + 1);
          for (const n of per.values()) assert.ok(n <= 2);
        }
      }),
    );
  });
});

describe('authentication back-off', () => {
  it('waits after the threshold, doubling to the cap; a success or a quiet quarter hour forgets', () => {
    let now = 0;
    const b = new AuthBackoff({ threshold: 2, maxSeconds: 5 }, () => now);
    assert.equal(b.delayFor('x'), 0);
    b.failed('x');
    assert.equal(b.delayFor('x'), 0);
    b.failed('x');
    assert.equal(b.delayFor('x'), 1000);
    b.failed('x');
    assert.equal(b.delayFor('x'), 2000);
    b.failed('x');
    b.failed('x');
    b.failed('x');
    assert.equal(b.delayFor('x'), 5000);
    assert.equal(b.delayFor('y'), 0, 'other addresses are not slowed');
    assert.equal(b.slowedAddresses, 1);
    assert.equal(b.totalFailures, 6);
    now += FORGET_AFTER_MS + 1;
    assert.equal(b.delayFor('x'), 0);
    b.failed('y');
    b.failed('y');
    b.succeeded('y');
    assert.equal(b.failuresOf('y'), 0);
    assert.equal(new AuthBackoff({ threshold: 0, maxSeconds: 5 }).delayFor('x'), 0);
  });
});

describe('per-user turns', () => {
  it('first come first served; a wait that runs out is 75; one that leaves gives up its place', async () => {
    const locks = new UserLocks();
    const never = new AbortController().signal;
    const order: string[] = [];
    const r1 = await locks.acquire('L', 1000, never, 'user a');
    const p2 = locks.acquire('L', 5000, never, 'user a').then((r) => (order.push('2'), r));
    const leaving = new AbortController();
    const p3 = locks.acquire('L', 5000, leaving.signal, 'user a');
    const p4 = locks.acquire('L', 5000, never, 'user a').then((r) => (order.push('4'), r));
    await assert.rejects(locks.acquire('L', 50, never, 'user a'), (e: unknown) => exit(75)(e) && /user a is being served to another connection; waited 0 seconds/.test((e as Error).message));
    leaving.abort();
    await assert.rejects(p3, exit(75));
    const other = await locks.acquire('M', 10, never, 'user b');
    other();
    r1();
    r1();
    (await p2)();
    (await p4)();
    assert.deepEqual(order, ['2', '4']);
    assert.equal(locks.busy, 0);
  });
});

describe('addresses and log values', () => {
  it('IPv4, IPv4 in IPv6, and IPv6 by its /64', () => {
    assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8::'), '2001:db8:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey(undefined), 'unknown');
  });

  it('a log value never breaks its line or its pair', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (v) => {
        const shown = logValue(v);
        assert.ok(!/[\n\r]/.test(shown));
        assert.ok(!shown.includes(' ') || shown.startsWith('"'));
      }),
    );
    const line = connectionLine({ id: 3, peer: '127.0.0.1:5', started: 0, user: 'a b\nc', result: 'refused: x' }, 1500);
    assert.equal(line, 'session 3 peer=127.0.0.1:5 user="a b\\nc" result="refused: x" time=1.500s');
  });
});
