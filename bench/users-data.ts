/**
 * The many-accounts data set: N small accounts, each 20 corpus messages over two folders (INBOX
 * and f01), as Dovecot's reference run for `doveadm backup -A -d` of 1,000 users has them
 * (account k takes corpus messages 20(k-1) mod 6040 onwards; message i goes to folder i mod 2;
 * flags F when i%7==0, R when i%11==0, S when i%3==0).
 *
 * Built once with mailferry's own Maildir store (so each account has Dovecot's dovecot-uidlist,
 * as a real one would) with its index elsewhere, cached under bench/data/users-N/, rebuilt when
 * missing or when USERS_DATA_VERSION changes. The master is only ever copied, never run on.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMaildirLocation } from '../src/config/location.js';
import { MaildirStore } from '../src/storage/maildir/maildir-store.js';
import type { SystemFlag } from '../src/storage/store.js';
import { req } from '../test/contract/store-contract.js';
import { cleanCorpus, shareMessages } from './data.js';
import { DATA_DIR, removeTree } from './workspace.js';

const USERS_DATA_VERSION = 1;
export const MESSAGES_PER_USER = 20;
export const USER_FOLDERS = ['INBOX', 'f01'] as const;

export interface UsersDataset {
  users: number;
  /** bench/data/users-N/home: one directory per user, each holding Maildir/. */
  homes: string;
  /** Per user the tally key of each folder ('INBOX', 'f01') and its message count. */
  perFolder: Record<string, number>;
  messages: number;
}

export const userName = (k: number) => `u${String(k).padStart(4, '0')}`;

/** Message i of account k, as the reference builder places and flags it. */
function flagsOf(i: number): SystemFlag[] {
  const f: SystemFlag[] = [];
  if (i % 7 === 0) f.push('\\Flagged');
  if (i % 11 === 0) f.push('\\Answered');
  if (i % 3 === 0) f.push('\\Seen');
  return f;
}

async function buildUser(home: string, k: number, buildIndex: string): Promise<void> {
  const mail = cleanCorpus();
  const store = MaildirStore.open(parseMaildirLocation(`maildir:${join(home, 'Maildir')}:INDEX=${buildIndex}`), { create: true, fsync: false, warn: () => {} });
  try {
    await store.createMailbox(['f01']);
    const skip = (MESSAGES_PER_USER * (k - 1)) % 6040;
    const byFolder = new Map<string, ReturnType<typeof req>[]>(USER_FOLDERS.map((f) => [f, []]));
    for (let i = 0; i < MESSAGES_PER_USER; i++) {
      const body = mail[(skip + i) % mail.length]!;
      const receivedDate = (1030000000 + skip + i) * 1000;
      byFolder.get(USER_FOLDERS[i % USER_FOLDERS.length]!)!.push(req(body, { flags: flagsOf(i), receivedDate }));
    }
    for (const [f, reqs] of byFolder) await store.saveMessages([f], reqs);
  } finally {
    await store.close();
  }
}

export async function usersDataset(users: number, log: (s: string) => void): Promise<UsersDataset> {
  const dir = join(DATA_DIR, `users-${users}`);
  const ds: UsersDataset = {
    users, homes: join(dir, 'home'), messages: users * MESSAGES_PER_USER,
    perFolder: Object.fromEntries(USER_FOLDERS.map((f, j) => [f, Math.ceil((MESSAGES_PER_USER - j) / USER_FOLDERS.length)])),
  };
  const manifest = join(dir, 'manifest.json');
  if (existsSync(manifest) && existsSync(ds.homes)) {
    const m = JSON.parse(readFileSync(manifest, 'utf8')) as { version: number; users: number };
    if (m.version === USERS_DATA_VERSION && m.users === users) return ds;
  }
  log(`building ${users} accounts of ${MESSAGES_PER_USER} messages under ${dir} ...`);
  const t = Date.now();
  removeTree(dir);
  mkdirSync(ds.homes, { recursive: true });
  const buildIndex = join(dir, 'build-index');
  for (let k = 1; k <= users; k++) {
    await buildUser(join(ds.homes, userName(k)), k, join(buildIndex, userName(k)));
  }
  rmSync(buildIndex, { recursive: true, force: true });
  // Message files are shared by hard links between work copies, read by users other than root.
  shareMessages(ds.homes);
  writeFileSync(manifest, JSON.stringify({ version: USERS_DATA_VERSION, users, messages: ds.messages }, null, 1));
  log(`  built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return ds;
}
