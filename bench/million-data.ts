/**
 * The million-message account: small generated messages written straight as Maildir files, with
 * the dovecot-uidlist and dovecot-keywords Dovecot would have written, cached under
 * bench/data/million-N/ (git-ignored) and reused by later runs. `N` is a parameter, so the case
 * can be tried on 100k messages before the 1M one is built.
 *
 * Written without mailferry's store: a million saves through it would take far longer than plain
 * file writes, and the case measures mailferry reading this account, not writing it.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatUidlist, type UidlistEntry } from '../src/storage/maildir/uidlist.js';
import { rng } from './data.js';
import { DATA_DIR, removeTree, walk } from './workspace.js';

const DATA_VERSION = 1;

export interface MillionDataset {
  name: string;
  master: string;
  folders: string[];
  messages: number;
  bytes: number;
}

/** Folder (Maildir++ dot name, '' for INBOX) and its share of the messages: one holds most of them. */
const SHARES: [string, number][] = [
  ['', 0.08], ['Archive', 0.7], ['Sent', 0.08], ['Lists.dev', 0.1], ['Trash', 0.02], ['Work Projects', 0.02],
];
const KEYWORDS = ['$Forwarded', '$NotJunk', 'todo'];

function mailboxGuid(r: () => number): string {
  let s = '';
  for (let i = 0; i < 4; i++) s += Math.floor(r() * 2 ** 32).toString(16).padStart(8, '0');
  return s;
}

/** A few hundred bytes of plain mail, each with its own Message-ID and subject. */
function message(i: number, folder: string, r: () => number): Buffer {
  const day = new Date(Date.UTC(2015, 0, 1) + Math.floor(r() * 9 * 365 * 86400) * 1000).toUTCString().replace('GMT', '+0000');
  const words = ['report', 'meeting', 'invoice', 'release', 'question', 'lunch', 'draft', 'notes', 'plan', 'update'];
  const subject = `${words[i % 10]} ${words[Math.floor(r() * 10)]} #${i}`;
  const lines = 1 + Math.floor(r() * 6);
  let body = '';
  for (let l = 0; l < lines; l++) body += `Line ${l} of message ${i} in ${folder || 'INBOX'}: ${words[Math.floor(r() * 10)]} ${'x'.repeat(Math.floor(r() * 40))}\n`;
  return Buffer.from(
    `From: Sender ${i % 977} <sender${i % 977}@example.org>\nTo: Alice <alice@example.com>\nSubject: ${subject}\n` +
    `Date: ${day}\nMessage-ID: <gen.${i}@million.bench.invalid>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n${body}`,
  );
}

/** Flag letters as mail clients leave them: mostly seen, some answered or flagged, a few keywords (a-c). */
function letters(folder: string, r: () => number): string {
  let s = '';
  const x = r();
  if (r() < 0.02) s += 'F';
  if (x < 0.08) s += 'R';
  if (folder === 'Sent' || r() < 0.85) s += 'S';
  if (folder === 'Trash' && r() < 0.3) s += 'T';
  if (r() < 0.03) s += String.fromCharCode(0x61 + Math.floor(r() * KEYWORDS.length));
  return s;
}

function build(ds: MillionDataset, total: number): void {
  const dir = join(DATA_DIR, ds.name);
  removeTree(dir);
  const r = rng(1_000_003);
  let bytes = 0, n = 0;
  const uidValidity = 1_600_000_000;
  const subscriptions: string[] = [];
  for (const [folder, share] of SHARES) {
    const mdir = folder === '' ? ds.master : join(ds.master, `.${folder}`);
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(mdir, sub), { recursive: true });
    if (folder !== '') {
      writeFileSync(join(mdir, 'maildirfolder'), '');
      subscriptions.push(folder);
    }
    writeFileSync(join(mdir, 'dovecot-keywords'), KEYWORDS.map((k, i) => `${i} ${k}\n`).join(''));
    const count = folder === SHARES.at(-1)![0] ? total - n : Math.round(total * share);
    const entries: UidlistEntry[] = [];
    for (let k = 0; k < count; k++, n++) {
      const body = message(n, folder, r);
      // Delivery times one per 10 seconds from 2015: Dovecot's sort order is that of the names.
      const base = `${1_420_070_400 + n * 10}.M${n % 1_000_000}P7Q${n}.million,S=${body.length},W=${body.length + body.toString('latin1').split('\n').length - 1}`;
      writeFileSync(join(mdir, 'cur', `${base}:2,${letters(folder, r)}`), body, { mode: 0o644 });
      entries.push({ uid: k + 1, basename: base, extra: [] });
      bytes += body.length;
    }
    writeFileSync(join(mdir, 'dovecot-uidlist'), formatUidlist({ version: 3, uidValidity: uidValidity + SHARES.findIndex((s) => s[0] === folder), nextUid: count + 1, mailboxGuid: mailboxGuid(r), headerExtra: [], entries }));
  }
  writeFileSync(join(ds.master, 'subscriptions'), `V\t2\n\n${subscriptions.map((s) => `${s.replace(/\./g, '\t')}\n`).join('')}`);
  ds.bytes = bytes;
  ds.messages = total;
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ version: DATA_VERSION, messages: total, bytes, folders: ds.folders }, null, 1));
}

/** The account of `total` messages, built when missing (about 20 s per 100k messages here). */
export function millionDataset(total: number, log: (s: string) => void): MillionDataset {
  const name = `million-${total}`;
  const dir = join(DATA_DIR, name);
  const ds: MillionDataset = { name, master: join(dir, 'Maildir'), folders: SHARES.map(([f]) => f || 'INBOX'), messages: 0, bytes: 0 };
  const manifestPath = join(dir, 'manifest.json');
  if (existsSync(manifestPath) && existsSync(ds.master)) {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version: number; messages: number; bytes: number };
    if (m.version === DATA_VERSION && m.messages === total) return { ...ds, messages: m.messages, bytes: m.bytes };
  }
  log(`building ${name} data set (${total} generated messages) under ${dir} ...`);
  const t = Date.now();
  build(ds, total);
  log(`  built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return ds;
}

/** Message files under a master, for a check that the build is whole. */
export function countMessageFiles(master: string): number {
  let n = 0;
  walk(master, (_p, isMsg) => void (isMsg && n++));
  return n;
}
