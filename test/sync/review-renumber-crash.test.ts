/**
 * A UID conflict moves a message to a new UID on the side that holds it: a copy is saved (a hard
 * link in a Maildir) and the old UID expunged afterwards. A crash between the two leaves one GUID
 * at two UIDs; the next run must finish the move, not copy the message a second time.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runSync } from '../../src/sync/sync.js';
import { message, readAll, req } from '../contract/store-contract.js';
import { runTsChild } from '../support/run-ts-child.js';

const INBOX = ['INBOX'];
const CHILD = fileURLToPath(new URL('./review-sync-child.ts', import.meta.url));

function open(root: string): MaildirStore {
  return MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} });
}

async function runChild(a: string, b: string, failpoint: string): Promise<NodeJS.Signals | null> {
  return (await runTsChild(CHILD, [a, b], { env: { MAILFERRY_FAILPOINT: failpoint } })).signal;
}

async function subjects(s: MaildirStore): Promise<string[]> {
  const out: string[] = [];
  for (const m of (await s.getMessages(INBOX)).messages) {
    const text = (await readAll(await s.openMessage(INBOX, m.uid))).toString();
    out.push(/^Subject: (.*)$/m.exec(text)?.[1] ?? '?');
  }
  return out.sort();
}

describe('two-way sync interrupted while renumbering', () => {
  for (const failpoint of ['save-after-rename:1', 'save-before-uidlist:1', 'save-after-index:1', 'save-after-index:2']) {
    it(`killed at ${failpoint}: the next run leaves each message once on each side`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-renum-'));
      const [ra, rb] = [join(dir, 'a'), join(dir, 'b')];
      try {
        let [a, b] = [open(ra), open(rb)];
        await runSync(a, b); // empty mailboxes agree on a UIDVALIDITY
        await a.saveMessages(INBOX, [req(message('x'))]);
        await b.saveMessages(INBOX, [req(message('y'))]); // both at UID 1: a conflict
        await a.close();
        await b.close();

        assert.equal(await runChild(ra, rb, failpoint), 'SIGKILL', 'the child died at the failpoint');

        [a, b] = [open(ra), open(rb)];
        try {
          await runSync(a, b);
          await runSync(a, b);
          assert.deepEqual(await subjects(a), ['x', 'y'], 'A holds each message once');
          assert.deepEqual(await subjects(b), ['x', 'y'], 'B holds each message once');
          const again = await runSync(a, b);
          assert.deepEqual([again.saved, again.expunged, again.flagUpdates, again.changedDuringSync], [0, 0, 0, false]);
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
