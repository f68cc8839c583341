import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { parseImapLocation } from '../../src/config/imap-location.js';
import { ImapStore } from '../../src/storage/imap/imap-store.js';
import { runStoreContract } from '../contract/store-contract.js';
import { startDovecot, type Dovecot } from '../support/dovecot.js';

// One server for the whole suite; every test gets an account of its own (a fresh, empty store).
const USERS = Array.from({ length: 20 }, (_, i) => `c${i}`);
let d: Dovecot;
/** The same server with only IMAP4rev1 basics advertised: no CONDSTORE, QRESYNC, MULTIAPPEND, MOVE. */
let plain: Dovecot;
let next = 0;
let dir: string;
const PLAIN_CAPABILITIES = 'imap_capability = IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN LIST-EXTENDED SPECIAL-USE UIDPLUS\n';

before(async () => {
  [d, plain] = await Promise.all([startDovecot({ users: USERS, imap: true }), startDovecot({ users: USERS, imap: true, extraConfig: PLAIN_CAPABILITIES })]);
  dir = await mkdtemp(join(tmpdir(), 'mailferry-imap-contract-'));
});
after(async () => {
  await d?.stop();
  await plain?.stop();
  await rm(dir, { recursive: true, force: true });
});

const skip = [
  {
    test: 'empty and large messages round-trip byte for byte',
    reason: 'IMAP servers refuse a zero-byte APPEND (Dovecot: "Can\'t save a zero byte message"); large messages are covered in test/imap/imap-store.test.ts',
  },
];

runStoreContract({
  name: 'imap (Dovecot, IMAP4rev1 only and X-GUID unused: UID+FLAGS scans, header-hash identity)',
  async open() {
    const user = USERS[next++ % USERS.length]!;
    const passwordFile = join(dir, `${user}.plain.pw`);
    await writeFile(passwordFile, `${plain.users[user]}\n`);
    const loc = parseImapLocation(`imap://${user}@127.0.0.1:${plain.port}/?tls=none&state=${join(dir, `plain-${user}`)}`);
    const open = () => ImapStore.open(loc, { passwordFile, ignoreXGuid: true, warn: () => {} });
    const store = await open();
    if (store.nativeGuids) throw new Error('X-GUID in use');
    if (store.capabilities().has('CONDSTORE') || store.capabilities().has('MULTIAPPEND')) throw new Error('capabilities not reduced');
    return { store, reopen: open, cleanup: async () => {} };
  },
  skip,
});

runStoreContract({
  name: 'imap (Dovecot)',
  async open() {
    const user = USERS[next++ % USERS.length]!;
    const passwordFile = join(dir, `${user}.pw`);
    await writeFile(passwordFile, `${d.users[user]}\n`);
    const loc = parseImapLocation(`imap://${user}@127.0.0.1:${d.port}/?tls=none&state=${join(dir, user)}`);
    const open = () => ImapStore.open(loc, { passwordFile, warn: () => {} });
    return { store: await open(), reopen: open, cleanup: async () => {} };
  },
  skip,
});
