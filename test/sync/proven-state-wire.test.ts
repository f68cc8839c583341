/**
 * The proof mark of a pair state across the remote protocol: it travels beside the entries
 * (which keep the seven-number shape an older peer checks), an older peer's messages without
 * it read as unproven, a mark string that does not fit is refused, and a sync with a remote
 * Maildir side goes incremental once a two-way run proved the mailbox.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { it } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/remote/protocol-error.js';
import { encodeMessage, MessageAssembler, parseObject } from '../../src/remote/wire-message.js';
import { OPS, type WireSpec } from '../../src/remote/wire-ops.js';
import type { MailboxName, MailStore, PairMailboxState } from '../../src/storage/store.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { connectInProcess } from '../remote/serve-in-process.js';
import { INBOX, openMaildir, tempRoots } from './maildir-pair.js';

function finalOf<T>(spec: WireSpec<T>, value: T): Record<string, unknown> {
  const { parts, final } = encodeMessage(spec, value);
  assert.equal(parts.length, 0);
  return parseObject(final, 'final');
}

function decode<T>(spec: WireSpec<T>, o: Record<string, unknown>): T {
  return new MessageAssembler(spec.chunked, 'test').finish(spec, o);
}

const guid32 = fc.stringMatching(/^[0-9a-f]{32}$/);
const u32 = fc.integer({ min: 1, max: 0xffffffff });
const entry = fc.tuple(
  guid32,
  fc.record({ uidValidity: u32, uidNext: u32, highestModseq: fc.nat(), peerUidValidity: u32, peerUidNext: u32, peerHighestModseq: fc.nat() }, { noNullPrototype: true }),
  fc.boolean(),
);

it('the proof mark round-trips, and entries keep the seven numbers an older peer checks', () => {
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 6 }), (raw) => {
      const state: [string, PairMailboxState][] = raw.map(([g, s, p]) => [g, p ? { ...s, proven: true } : s]);
      for (const [spec, value] of [
        [OPS.setPairState.request, { peer: 'abc', state }],
        [OPS.getPairState.reply, { state }],
      ] as const) {
        const o = finalOf(spec as WireSpec<unknown>, value);
        for (const e of o.state as unknown[][]) assert.equal(e.length, 7);
        assert.deepEqual(decode(spec as WireSpec<unknown>, o), value);
        // As an older peer sends it (or reads it back): no marks, every entry unproven.
        const { proven: _, ...old } = o;
        const unmarked = (decode(spec as WireSpec<unknown>, old) as { state: [string, PairMailboxState][] }).state;
        assert.ok(unmarked.every(([, s]) => s.proven === undefined));
        if (raw.every(([, , p]) => !p)) assert.equal(o.proven, undefined, 'nothing added where nothing is proven');
      }
    }),
    { numRuns: 100 },
  );
});

it('a mark string that does not fit the entries is a protocol error naming the field', () => {
  const s = { uidValidity: 1, uidNext: 2, highestModseq: 3, peerUidValidity: 1, peerUidNext: 2, peerHighestModseq: 4 };
  const state = [['a'.repeat(32), s]];
  for (const proven of ['', '11', '2', 1, true, null, ['1']]) {
    assert.throws(
      () => decode(OPS.getPairState.reply, { state: state.map(([g, v]) => [g, ...Object.values(v as object)]), proven }),
      (err: unknown) => err instanceof ProtocolError && /proven/.test(err.message),
      JSON.stringify(proven),
    );
  }
});

function counting(store: MailStore, c: { since: number }): MailStore {
  return new Proxy(store, {
    get(t, p) {
      if (p === 'getMessages') return (n: MailboxName, since?: number) => (since !== undefined && c.since++, t.getMessages(n, since));
      const v = Reflect.get(t, p, t) as unknown;
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

it('with a remote Maildir side, a proven state crosses the connection and the next change is planned from it', async () => {
  const roots = await tempRoots('proven-wire');
  const served = { since: 0 };
  const a = openMaildir(roots.a);
  const { store: b, served: done } = await connectInProcess(`maildir:${roots.b}`, { wrap: (s) => counting(s, served) });
  try {
    await a.saveMessages(INBOX, Array.from({ length: 4 }, (_, i) => req(message(`m${i}`))));
    await runSync(a, b);
    const box = (await a.mailboxStatus(INBOX))!.guid;
    assert.equal((await b.getPairState(a.storeId))[box]?.proven, true, 'the remote side keeps the mark');
    await a.saveMessages(INBOX, [req(message('new'))]);
    served.since = 0;
    const r = await runSync(a, b);
    assert.equal(r.changedDuringSync, false);
    // The plan is made from the changes since the proven state, read over the connection.
    assert.ok(served.since > 0, 'the remote side was asked for its changes since the proven state');
    const show = async (s: MailStore) => (await s.getMessages(INBOX)).messages.map((m) => `${m.uid} ${m.guid}`);
    assert.deepEqual(await show(a), await show(b));
  } finally {
    await a.close();
    await b.close();
    await done.catch(() => {});
    await rm(roots.dir, { recursive: true, force: true });
  }
});
