/**
 * A run killed after it changed the mail but before it recorded what it did (the agreed flags,
 * the pair state, a backup's state, the `sync -1` watermark): the next run must still end with
 * every message once on each side, and a run after that must find nothing to do.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { message, readAll, req } from '../contract/store-contract.js';
import { runTsChild } from '../support/run-ts-child.js';

const CHILD = fileURLToPath(new URL('./metadata-crash-child.ts', import.meta.url));
const BOXES = [['INBOX'], ['Work']];
type Mode = 'sync' | 'sync1' | 'backup';

function open(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

async function runChild(mode: Mode, a: string, b: string, failpoint: string): Promise<NodeJS.Signals | null> {
  return (await runTsChild(CHILD, [mode, a, b], { env: { MAILFERRY_FAILPOINT: failpoint } })).signal;
}

async function run(mode: Mode, a: MaildirStore, b: MaildirStore) {
  return mode === 'backup' ? runBackup(a, b) : runSync(a, b, { mode: mode === 'sync1' ? 'oneway' : 'twoway' });
}

/** Per mailbox: subject and flags of every message, sorted. */
async function contents(s: MaildirStore): Promise<string[]> {
  const out: string[] = [];
  for (const box of BOXES) {
    for (const m of (await s.getMessages(box)).messages) {
      const text = (await readAll(await s.openMessage(box, m.uid))).toString();
      out.push(`${box.join('/')} ${/^Subject: (.*)$/m.exec(text)?.[1] ?? '?'} ${[...m.flags, ...m.keywords].sort().join(',')}`);
    }
  }
  return out.sort();
}

const cases: [Mode, string][] = [
  ['sync', 'sync-before-synced-flags:1'],
  ['sync', 'sync-before-synced-flags:2'],
  ['sync', 'sync-before-pair-state'],
  ['sync1', 'sync-before-synced-flags:1'],
  ['sync1', 'sync-before-pair-state'],
  ['backup', 'backup-before-state'],
  ['backup', 'backup-between-states'],
];

describe('a run killed before it records what it did', () => {
  for (const [mode, failpoint] of cases) {
    it(`${mode} killed at ${failpoint}: the next run completes it, and the one after finds nothing to do`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-metadata-crash-'));
      const [ra, rb] = [join(dir, 'a'), join(dir, 'b')];
      try {
        let [a, b] = [open(ra), open(rb)];
        await a.createMailbox(['Work']);
        await a.saveMessages(['INBOX'], [req(message('one')), req(message('two'), { flags: ['\\Seen'] }), req(message('three'))]);
        await a.saveMessages(['Work'], [req(message('four'), { keywords: ['$Label1'] })]);
        await run(mode === 'sync1' ? 'sync' : mode, a, b);
        // Changes on both sides (the destination's are undone by a backup, kept by the others).
        const [ia, ib] = [(await a.getMessages(['INBOX'])).messages, (await b.getMessages(['INBOX'])).messages];
        await a.updateFlags(['INBOX'], [{ uid: ia[0]!.uid, flags: ['\\Flagged'], keywords: ['urgent'] }]);
        await a.saveMessages(['Work'], [req(message('five'))]);
        await b.updateFlags(['INBOX'], [{ uid: ib[1]!.uid, flags: ['\\Seen', '\\Answered'], keywords: [] }]);
        await b.expunge(['INBOX'], [ib[2]!.uid]);
        await b.saveMessages(['INBOX'], [req(message('six'))]);
        const sourceBefore = await contents(a);
        await a.close();
        await b.close();

        assert.equal(await runChild(mode, ra, rb, failpoint), 'SIGKILL', 'the child died at the failpoint');

        [a, b] = [open(ra), open(rb)];
        try {
          await run(mode, a, b);
          const [ca, cb] = [await contents(a), await contents(b)];
          const subjects = (c: string[]) => c.map((l) => l.split(' ').slice(0, 2).join(' '));
          for (const c of [ca, cb]) assert.equal(new Set(subjects(c)).size, c.length, `no message twice: ${c.join(' | ')}`);
          if (mode === 'sync1') {
            assert.deepEqual(ca, sourceBefore, 'sync -1 leaves its source alone');
            // The destination's own deletion holds: sync -1 never brings back what it expunged.
            for (const line of ca.filter((l) => !l.startsWith('INBOX three '))) assert.ok(subjects(cb).includes(line.split(' ').slice(0, 2).join(' ')), `the destination has ${line}`);
            assert.ok(!subjects(cb).includes('INBOX three'), "the destination's deletion is not undone");
            assert.ok(cb.includes('INBOX six '), "the destination keeps its own new message");
          } else {
            assert.deepEqual(cb, ca, 'both sides equal');
            assert.ok(ca.includes('INBOX one \\Flagged,urgent'), 'the source flag change holds');
            if (mode === 'sync') {
              assert.ok(ca.includes('INBOX two \\Answered,\\Seen') && ca.includes('INBOX six ') && !subjects(ca).includes('INBOX three'), `the destination's changes hold: ${ca.join(' | ')}`);
            } else {
              assert.deepEqual(ca, sourceBefore, 'a backup leaves its source alone');
            }
          }
          const again = await run(mode, a, b);
          assert.deepEqual([again.saved, again.flagUpdates, again.expunged, again.treeActions], [0, 0, 0, 0], 'a further run changes nothing');
        } finally {
          await a.close();
          await b.close();
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
