/**
 * Mail another program delivers and numbers while our scan waits for the uidlist lock: the scan
 * reads its line under the lock but not its file, so the index records a UIDNEXT past a UID it
 * holds no message at. That is no expunged message coming back (only a recorded expunge is):
 * the next scan must take the delivery at the UID Dovecot and its clients know, not renumber it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import { req } from '../contract/store-contract.js';
import { corpusMessages } from '../support/corpus.js';

const INBOX = ['INBOX'];
const openStore = (root: string, warnings: string[]) =>
  MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: (m) => warnings.push(m) });

it('a message Dovecot delivers and numbers between our listing and our uidlist lock keeps its UID', async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'mailferry-race-'));
  const root = join(scratch, 'Maildir');
  const mail = corpusMessages(5);
  const warnings: string[] = [];
  let s = openStore(root, warnings);
  await s.saveMessages(INBOX, mail.slice(0, 3).map((m) => req(m)));
  await s.close();
  // A new file waits for a line: our next scan appends under the uidlist lock.
  writeFileSync(join(root, 'new', '1700000300.M1P5.mx'), mail[3]!);
  const lock = join(root, 'dovecot-uidlist.lock');
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  s = openStore(root, warnings);
  try {
    writeFileSync(lock, `${sleeper.pid}:${hostname()}`);
    const reading = s.getMessages(INBOX); // reads the uidlist, lists, waits for the lock
    await new Promise((r) => setTimeout(r, 300));
    // Dovecot (holding the lock) delivers one more message and numbers both new files.
    writeFileSync(join(root, 'new', '1700000400.M2P5.mx'), mail[4]!);
    appendFileSync(join(root, 'dovecot-uidlist'), '4 :1700000300.M1P5.mx\n5 :1700000400.M2P5.mx\n');
    rmSync(lock);
    assert.deepEqual((await reading).messages.map((m) => m.uid), [1, 2, 3, 4]);
  } finally {
    sleeper.kill();
    await s.close();
  }
  s = openStore(root, warnings);
  try {
    const got = (await s.getMessages(INBOX)).messages.map((m) => [m.uid, m.guid]);
    // Dovecot and its clients know the delivery as UID 5; it was never expunged.
    assert.deepEqual(got.at(-1), [5, '1700000400.M2P5.mx']);
    assert.deepEqual(warnings.filter((w) => w.includes('reappeared')), []);
  } finally {
    await s.close();
    await rm(scratch, { recursive: true, force: true });
  }
});
