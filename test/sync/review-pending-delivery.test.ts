/**
 * A save killed after renaming part of its batch into cur/ but before the uidlist, then a delivery
 * agent drops new mail into new/ before mailferry looks again: the next scan gives the orphans
 * the UIDs and GUIDs their save meant, the delivered mail a UID above them, and a re-run of the
 * save completes without duplicates.
 */
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { runTsChild } from '../support/run-ts-child.js';

const CHILD = fileURLToPath(new URL('../support/save-child.ts', import.meta.url));
const COUNT = 20;

async function runChild(location: string, failpoint?: string): Promise<string | null> {
  return (await runTsChild(CHILD, [location, String(COUNT), '10'], { env: { MAILFERRY_FAILPOINT: failpoint } })).signal;
}

function deliver(root: string, name: string): void {
  writeFileSync(join(root, 'tmp', name), 'Subject: delivered\nMessage-ID: <delivered@test>\n\nhi\n');
  renameSync(join(root, 'tmp', name), join(root, 'new', name));
}

describe('interrupted save, then a delivery before the next scan', () => {
  for (const point of ['save-after-rename:4', 'save-after-rename:13', 'save-before-uidlist:2']) {
    it(`killed at ${point}: orphans keep their meant UIDs and GUIDs, the delivery comes after them, nothing twice`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mailferry-review-deliver-'));
      const root = join(dir, 'Maildir');
      try {
        assert.equal(await runChild(`maildir:${root}`, point), 'SIGKILL');
        deliver(root, '1700000000.delivered.host');
        const store = MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { fsync: false, warn: () => {} });
        try {
          const first = (await store.getMessages(['INBOX'])).messages;
          const ours = first.filter((m) => /^g\d+$/.test(m.guid));
          for (const m of ours) assert.equal(m.uid, 2 * Number(m.guid.slice(1)) + 1, `${m.guid} at its meant UID`);
          const delivered = first.find((m) => m.guid === '1700000000.delivered.host');
          assert.ok(delivered, 'the delivered message is listed');
          assert.ok(ours.every((m) => m.uid < delivered.uid), 'the delivery is numbered after the orphans');
        } finally {
          await store.close();
        }
        assert.equal(await runChild(`maildir:${root}`), null);
        const again = MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { fsync: false, warn: () => {} });
        try {
          const all = (await again.getMessages(['INBOX'])).messages;
          const guids = all.map((m) => m.guid);
          assert.equal(new Set(guids).size, guids.length, 'no GUID twice');
          assert.equal(all.length, COUNT + 1, 'every message once, plus the delivery');
          const lines = readFileSync(join(root, 'dovecot-uidlist'), 'utf8').trim().split('\n').slice(1);
          assert.equal(lines.length, COUNT + 1, 'the uidlist lists each file once');
        } finally {
          await again.close();
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
