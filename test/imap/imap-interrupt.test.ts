/**
 * Connections that die mid-migration (cut by a relay in front of Dovecot, in the middle of
 * an APPEND or a FETCH): a short outage is ridden out within the run; a long one ends the run
 * with 75, and the next run completes. Either way every message arrives exactly once.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { corpusMessages } from '../support/corpus.js';
import { startDovecot, type Dovecot } from '../support/dovecot.js';
import { readAll } from '../contract/store-contract.js';
import { cliAsync, CuttingProxy, lfOnly, passwordFile, seed, snapshot, withStore } from './imap-helpers.js';

describe('IMAP connection loss (CLI)', { timeout: 120_000 }, () => {
  let d: Dovecot;
  let dir: string;
  let proxy: CuttingProxy;
  const pw: Record<string, string> = {};
  const mail = lfOnly(corpusMessages(900)).filter((_, i) => i % 3 === 0);
  const FOLDERS = [['INBOX'], ['Work'], ['Lists', 'dev']];
  const via = (user: string) => `imap://${user}@127.0.0.1:${proxy.port}/?tls=none&state=${join(dir, `state-${user}`)}`;

  before(async () => {
    d = await startDovecot({ users: ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'], imap: true });
    dir = await mkdtemp(join(tmpdir(), 'mailferry-imap-interrupt-'));
    for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) pw[u] = passwordFile(dir, u, d.users[u]!);
    proxy = await CuttingProxy.start(d.port);
    await seed(`maildir:${join(dir, 'src')}`, mail, FOLDERS);
  });
  after(async () => {
    await proxy?.close();
    await d?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const counts = async (user: string) => {
    const out = await d.doveadm(['-f', 'tab', 'mailbox', 'status', 'messages', '*'], { user });
    return out.trim().split('\n').slice(1).reduce((n, l) => n + Number(l.split('\t')[1]), 0);
  };

  it('a connection cut in the middle of the uploads is resumed within the run', async () => {
    const src = `maildir:${join(dir, 'src')}`;
    proxy.cutAfter(300_000);
    const r = await cliAsync(pw.alice!, ['backup', src, via('alice')]);
    assert.ok(proxy.cuts >= 1, 'the connection was cut');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /retrying/);
    assert.equal(await counts('alice'), mail.length, 'every message once');
    assert.deepEqual(await snapshot(via('alice'), { uids: true, passwordFile: pw.alice }), await snapshot(src, { uids: true }));
  });

  it('the server gone for good: exit 75; the next run completes without duplicates', async () => {
    const src = `maildir:${join(dir, 'src')}`;
    proxy.cuts = 0;
    proxy.cutAfter(400_000);
    const run = cliAsync(pw.bob!, ['backup', src, via('bob')]);
    // Once the cut happens, refuse every reconnect until the run gives up.
    let finished = false;
    void run.then(() => (finished = true));
    while (proxy.cuts < 1 && !finished) await new Promise((r) => setTimeout(r, 2));
    proxy.down();
    const r = await run;
    proxy.up();
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr.trim().split('\n').at(-1)!, /^mailferry: error: imap:\/\/bob@127\.0\.0\.1:\d+: .*connection/);
    const partial = await counts('bob');
    assert.ok(partial < mail.length, `stopped part way (${partial})`);
    // (Asynchronously: the relay lives in this process.)
    const again = await cliAsync(pw.bob!, ['backup', src, via('bob')]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await counts('bob'), mail.length, 'every message once');
    // The server numbers what it stores; after a cut the rest may get other UIDs there, never other mail.
    assert.deepEqual(await snapshot(via('bob'), { passwordFile: pw.bob }), await snapshot(src));
  });

  it('a server that stops answering mid-upload: -T bounds the wait, the run reconnects and completes', async () => {
    const src = `maildir:${join(dir, 'src')}`;
    proxy.cuts = 0;
    proxy.stallAfter(300_000);
    // Half of -T finds the stall; the other half is left for the retry.
    const r = await cliAsync(pw.dave!, ['backup', '-T', '4', src, via('dave')]);
    assert.ok(proxy.cuts >= 1, 'the connection stalled');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /retrying/);
    assert.equal(await counts('dave'), mail.length, 'every message once');
  });

  it('a connection cut while downloading is resumed within the run', async () => {
    const src = `maildir:${join(dir, 'src')}`;
    assert.equal((await cliAsync(pw.carol!, ['backup', src, via('carol')])).code, 0);
    const dst = `maildir:${join(dir, 'dst-carol')}`;
    proxy.cuts = 0;
    proxy.cutAfter(500_000);
    const r = await cliAsync(pw.carol!, ['backup', via('carol'), dst]);
    assert.ok(proxy.cuts >= 1, 'the connection was cut');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await snapshot(dst, { uids: true }), await snapshot(src, { uids: true }));
  });

  it('killed after the server stored a batch and before it was recorded: the next run sends none of it again', async () => {
    const src = `maildir:${join(dir, 'src')}`;
    // Dies right after the second APPEND's answer, with the next batch already read.
    const r = await cliAsync(pw.frank!, ['backup', src, via('frank')], { MAILFERRY_FAILPOINT: 'imap-after-append:2' });
    assert.equal(r.code, -1, `killed (${r.stderr})`);
    const partial = await counts('frank');
    assert.ok(partial > 0 && partial < mail.length, `stopped part way (${partial})`);
    const again = await cliAsync(pw.frank!, ['backup', src, via('frank')]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await counts('frank'), mail.length, 'every message once');
    assert.deepEqual(await snapshot(via('frank'), { uids: true, passwordFile: pw.frank }), await snapshot(src, { uids: true }));
  });

  it('bodies read ahead come back whole and in UID order when the connection is cut mid-batch', async () => {
    const src = `maildir:${join(dir, 'src')}`;
    assert.equal((await cliAsync(pw.erin!, ['backup', src, via('erin')])).code, 0);
    // What the source holds, UID for UID (the first upload into an empty account keeps them).
    const want = new Map<string, Buffer>();
    await withStore(src, async (s) => {
      for (const f of FOLDERS) for (const m of (await s.getMessages(f)).messages) want.set(`${f.join('/')}:${m.uid}`, await readAll(await s.openMessage(f, m.uid)));
    });
    proxy.cuts = 0;
    let read = 0;
    await withStore(via('erin'), async (s) => {
      for (const f of FOLDERS) {
        const uids = (await s.getMessages(f)).messages.map((m) => m.uid);
        assert.deepEqual(uids, [...uids].sort((a, b) => a - b));
        for (const [k, uid] of uids.entries()) {
          // Cut while the batches behind this one are on the wire.
          if (k % 70 === 3) proxy.cutAfter(40_000 + k * 500);
          const body = await readAll(await s.openMessage(f, uid));
          assert.ok(body.equals(want.get(`${f.join('/')}:${uid}`)!), `${f.join('/')} UID ${uid} byte for byte`);
          read++;
        }
      }
    }, pw.erin);
    proxy.cutAfter(Infinity);
    assert.equal(read, want.size);
    assert.ok(proxy.cuts >= 2, `the connection was cut mid-read (${proxy.cuts})`);
  });
});
