/**
 * The benchmark's mail: built once with mailferry's own Maildir store, cached under bench/data/
 * (git-ignored), rebuilt when missing or when DATA_VERSION changes.
 *
 * - corpus: the 6,046 SpamAssassin messages over 12 folders.
 * - big: 100,000 messages over 20 folders, made from the corpus by giving each copy its own
 *   Message-ID (so no two messages are the same mail).
 *
 * The cached master never gets an index of either tool: it is written with INDEX= pointing
 * elsewhere, so both tools start from Dovecot's plain files (uidlist, keywords, subscriptions)
 * and each builds its own index during its first run, as it would on a real account.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMaildirLocation } from '../src/config/location.js';
import { MaildirStore } from '../src/storage/maildir/maildir-store.js';
import type { SaveRequest, SystemFlag } from '../src/storage/store.js';
import { req } from '../test/contract/store-contract.js';
import { corpusMessages } from '../test/support/corpus.js';
import { DATA_DIR, removeTree, walk } from './workspace.js';

/** Bump when the generated data changes shape, so stale caches are rebuilt. */
const DATA_VERSION = 1;

export interface Dataset {
  name: 'corpus' | 'big';
  /** The pristine Maildir; never handed to a tool, only copied. */
  master: string;
  folders: string[];
  messages: number;
  bytes: number;
}

const CORPUS_FOLDERS = [
  'INBOX', 'Sent', 'Drafts', 'Trash', 'Junk', 'Archive', 'Archive.2002',
  'Lists.spamassassin-talk', 'Lists.exmh-workers', 'Work', 'Work.Projects', 'Privé',
];
const BIG_FOLDERS = [
  'INBOX', 'Sent', 'Drafts', 'Trash', 'Junk', 'Archive', 'Archive.2019', 'Archive.2020',
  'Archive.2021', 'Archive.2022', 'Archive.2023', 'Lists.dev', 'Lists.announce', 'Lists.users',
  'Work', 'Work.Projects', 'Work.Clients', 'Receipts', 'Family', 'Travel',
];

/** Deterministic PRNG (mulberry32), so every build and every change set is the same. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A Maildir holds RFC 5322 mail: drop the mbox "From " line the corpus was cut with. */
function stripFromLine(m: Buffer): Buffer {
  if (m.subarray(0, 5).toString('latin1') !== 'From ') return m;
  const nl = m.indexOf(0x0a);
  return nl < 0 ? m : m.subarray(nl + 1);
}

let clean: Buffer[] | undefined;
export function cleanCorpus(): Buffer[] {
  return (clean ??= corpusMessages().map(stripFromLine));
}

/** Copy `k` of a corpus message: same bytes but its own Message-ID (added when missing). */
export function variant(m: Buffer, k: number, tag: string): Buffer {
  let end = m.indexOf('\n\n');
  if (end < 0) end = m.length;
  const head = m.subarray(0, end).toString('latin1');
  const re = /^Message-I[Dd]:[ \t]*<?([^>\r\n]*)>?/m;
  const id = `<${tag}${k}.${re.exec(head)?.[1]?.trim() || 'none@bench.invalid'}>`;
  const fixed = re.test(head) ? head.replace(re, `Message-ID: ${id}`) : `Message-ID: ${id}\n${head}`;
  return Buffer.concat([Buffer.from(fixed, 'latin1'), m.subarray(end)]);
}

/** Flags and keywords as a real account has them: mostly read, some answered, a few flagged. */
function attributes(folder: string, r: () => number): Pick<SaveRequest, 'flags' | 'keywords'> {
  const flags: SystemFlag[] = [];
  const keywords: string[] = [];
  if (folder === 'Drafts') flags.push('\\Draft');
  else if (folder === 'Sent' || r() < 0.85) flags.push('\\Seen');
  if (r() < 0.1) flags.push('\\Answered');
  if (r() < 0.04) flags.push('\\Flagged');
  if (folder === 'Trash' && r() < 0.2) flags.push('\\Deleted');
  if (folder === 'Junk') keywords.push('$Junk');
  else if (r() < 0.05) keywords.push('$NotJunk');
  if (r() < 0.03) keywords.push('$Forwarded');
  if (r() < 0.02) keywords.push(['$Label1', '$Label2', 'todo', 'later'][Math.floor(r() * 4)]!);
  return { flags, keywords };
}

/** Which folder a message goes to: spam mostly to Junk/Trash, ham over the rest, INBOX heaviest. */
function pickFolder(folders: string[], isSpam: boolean, r: () => number): string {
  if (isSpam && r() < 0.8) return r() < 0.75 ? 'Junk' : 'Trash';
  if (r() < 0.3) return 'INBOX';
  const rest = folders.filter((f) => f !== 'INBOX' && f !== 'Junk');
  return rest[Math.floor(r() * rest.length)]!;
}

async function build(ds: Dataset, total: number): Promise<void> {
  const dir = join(DATA_DIR, ds.name);
  removeTree(dir);
  mkdirSync(dir, { recursive: true });
  const buildIndex = join(dir, 'build-index');
  const store = MaildirStore.open(parseMaildirLocation(`maildir:${ds.master}:INDEX=${buildIndex}`), { create: true, fsync: false, warn: () => {} });
  const mail = cleanCorpus();
  // Which corpus messages are spam: the list is sorted easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2.
  const firstSpam = 2500 + 1400 + 250;
  const r = rng(ds.name === 'corpus' ? 1 : 2);
  const byFolder = new Map<string, SaveRequest[]>(ds.folders.map((f) => [f, []]));
  for (let i = 0; i < total; i++) {
    const src = i % mail.length;
    const copy = Math.floor(i / mail.length);
    const folder = pickFolder(ds.folders, src >= firstSpam, r);
    const body = ds.name === 'corpus' ? mail[src]! : variant(mail[src]!, copy, 'c');
    // Received dates spread over five years, so date filters and Archive years look plausible.
    const receivedDate = Date.UTC(2019, 0, 1) + Math.floor(r() * 5 * 365 * 86400) * 1000;
    byFolder.get(folder)!.push(req(body, { ...attributes(folder, r), receivedDate }));
  }
  for (const f of ds.folders) if (f !== 'INBOX') await store.createMailbox(f.split('.'));
  for (const f of ['INBOX', 'Sent', 'Drafts', 'Trash', 'Junk', 'Archive', 'Work']) await store.setSubscribed(f.split('.'), true);
  for (const [f, reqs] of byFolder) {
    // Oldest first, as mail arrives; in batches so the writer's memory stays small.
    reqs.sort((a, b) => a.receivedDate - b.receivedDate);
    for (let i = 0; i < reqs.length; i += 2000) await store.saveMessages(f.split('.'), reqs.slice(i, i + 2000));
  }
  await store.close();
  rmSync(buildIndex, { recursive: true, force: true }); // a few files: not worth a stamp
  // Message files are shared by hard links between work copies, and doveadm runs as nobody.
  shareMessages(ds.master);
  let bytes = 0;
  walk(ds.master, (p, isMsg) => {
    if (isMsg) bytes += statSync(p).size;
  });
  ds.bytes = bytes;
  ds.messages = total;
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ version: DATA_VERSION, messages: total, bytes, folders: ds.folders }, null, 1));
}

export async function dataset(name: Dataset['name'], log: (s: string) => void): Promise<Dataset> {
  const dir = join(DATA_DIR, name);
  const ds: Dataset = { name, master: join(dir, 'Maildir'), folders: name === 'corpus' ? CORPUS_FOLDERS : BIG_FOLDERS, messages: 0, bytes: 0 };
  const manifestPath = join(dir, 'manifest.json');
  if (existsSync(manifestPath) && existsSync(ds.master)) {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version: number; messages: number; bytes: number };
    if (m.version === DATA_VERSION) return { ...ds, messages: m.messages, bytes: m.bytes };
  }
  const total = name === 'corpus' ? cleanCorpus().length : 100_000;
  log(`building ${name} data set (${total} messages) under ${dir} ...`);
  const t = Date.now();
  await build(ds, total);
  log(`  built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return ds;
}

/** World-readable message files in the master (see workCopy); idempotent, cheap once done. */
export function shareMessages(master: string): void {
  walk(master, (p, isMsg) => {
    if (!isMsg) return;
    const st = lstatSync(p);
    if ((st.mode & 0o044) !== 0o044) chmodSync(p, (st.mode & 0o777) | 0o044);
  });
}
