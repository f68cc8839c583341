/**
 * A site for `mailferry server` tests: certificates made with openssl, a shared secret, a
 * passwd-file userdb whose users have nobody's uid (as root, sessions take it) and homes under
 * the site's srv/ directory, client-side Maildirs, and the views the tests compare: mailferry's
 * (the server side read through the server itself, never opened as root: files root created
 * there would lock the user's sessions out) and doveadm's, of either side.
 */
import { chownSync, chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/storage/open-store.js';
import type { MailStore, SystemFlag } from '../../src/storage/store.js';
import { req } from '../contract/store-contract.js';
import { doveadmFetch, doveadmMailboxList, doveadmMailboxStatus, grantDovecotAccess, type Dovecot } from '../support/dovecot.js';
import { makeCerts, type CertFiles } from '../support/tls-certs.js';
import { snapshot } from '../remote/mail-snapshot.js';

export const ROOT = process.getuid?.() === 0;
export const NOBODY = 65534;

/** Folders with spaces, unicode and dots (LAYOUT=fs keeps dots as they are). */
export const FOLDERS = [['INBOX'], ['Sent Items'], ['Entwürfe'], ['Lists', 'dev.null'], ['日本語']];
const FLAGS: SystemFlag[][] = [[], ['\\Seen'], ['\\Seen', '\\Answered'], ['\\Flagged'], ['\\Seen', '\\Draft']];
const KEYWORDS = [[], ['$Label1'], [], ['work', '$Junk'], []];

export interface ServerSite {
  dir: string;
  certs: CertFiles;
  secretFile: string;
  /** The server's passwd-file userdb. */
  userdb: string;
  /** The server's settings (-o) and arguments for a TLS server with the secret and the userdb. */
  serverSettings: string[];
  serverArgs: string[];
  /** The client's settings (-o). */
  clientSettings: string[];
  home(user: string): string;
  /** The user's mail on the server, as the server's template names it. */
  serverMail(user: string): string;
  /** A client-side Maildir. */
  local(name: string): string;
  tcps(port: number, user: string, query?: string): string;
  cleanup(): void;
}

export function makeServerSite(users: readonly string[]): ServerSite {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-server-'));
  // Sessions run as nobody and must reach their homes below.
  chmodSync(dir, 0o755);
  const certs = makeCerts(dir);
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, 'ffb3b5c9e3a3b5a8d3f1c0e2a6b4c8d2e0f1a3b5c7d9e1f3\n', { mode: 0o600 });
  const srv = join(dir, 'srv');
  mkdirSync(srv, { mode: 0o755 });
  mkdirSync(join(dir, 'client'), { mode: 0o755 });
  const home = (u: string) => join(srv, u);
  for (const u of users) {
    mkdirSync(home(u), { mode: 0o700 });
    if (ROOT) chownSync(home(u), NOBODY, NOBODY);
  }
  const userdb = join(dir, 'users');
  const uid = ROOT ? NOBODY : process.getuid!();
  const gid = ROOT ? NOBODY : process.getgid!();
  writeFileSync(userdb, users.map((u) => `${u}:x:${uid}:${gid}::${home(u)}::\n`).join(''));
  return {
    dir,
    certs,
    secretFile,
    userdb,
    serverSettings: [`userdb=passwd-file:${userdb}`, 'first_valid_uid=0'],
    serverArgs: ['--listen', '127.0.0.1:0', '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--secret-file', secretFile, 'maildir:~/Maildir:LAYOUT=fs'],
    clientSettings: [`server_secret_file=${secretFile}`],
    home,
    serverMail: (u) => `maildir:${join(home(u), 'Maildir')}:LAYOUT=fs`,
    local: (name) => `maildir:${join(dir, 'client', name)}:LAYOUT=fs`,
    tcps: (port, user, query = `cafile=${certs.ca}`) => `tcps:${user}@127.0.0.1:${port}${query ? `?${query}` : ''}`,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Opens any location from the test process: tcp(s): ones with the site's secret. */
export function openAt(site: ServerSite, location: string): Promise<MailStore> {
  return openStore(location, { create: true, fsync: false, warn: () => {}, remote: { secretFile: site.secretFile }, lockTimeoutSeconds: 60 });
}

/** Saves `bodies` spread over FOLDERS with flags and keywords; returns how many. */
export async function fill(site: ServerSite, location: string, bodies: Buffer[]): Promise<number> {
  const s = await openAt(site, location);
  try {
    const have = new Set((await s.listMailboxes()).mailboxes.map((m) => m.name.join('/')));
    for (const f of FOLDERS.slice(1)) if (!have.has(f.join('/'))) await s.createMailbox(f);
    await s.setSubscribed(['Sent Items'], true);
    for (let i = 0; i < FOLDERS.length; i++) {
      const mine = bodies.filter((_, j) => j % FOLDERS.length === i);
      if (mine.length > 0) await s.saveMessages(FOLDERS[i]!, mine.map((b, k) => req(b, { flags: [...FLAGS[k % FLAGS.length]!], keywords: [...KEYWORDS[k % KEYWORDS.length]!] })));
    }
  } finally {
    await s.close();
  }
  return bodies.length;
}

/** Every message of every mailbox, as mailferry reads it (through the server for tcps:). */
export async function mailferryView(site: ServerSite, location: string) {
  const s = await openAt(site, location);
  try {
    return await snapshot(s);
  } finally {
    await s.close();
  }
}

/** What doveadm reads in a Maildir: per mailbox its status and every message's UID, GUID, size and flags. */
export async function doveadmView(d: Dovecot, location: string): Promise<Record<string, unknown>> {
  const where = `${location}:INDEX=MEMORY`;
  const view: Record<string, unknown> = {};
  for (const name of await doveadmMailboxList(d, 'alice', where)) {
    const st = await doveadmMailboxStatus(d, 'alice', where, name);
    const mail = await doveadmFetch(d, 'alice', where, name);
    view[name] = { ...st, highestmodseq: undefined, mail: mail.map((m) => `${m.uid} ${m.guid} ${m.size} ${[...m.flags].sort().join(' ')}`) };
  }
  return view;
}

/** Lets Dovecot's uid read a client-side tree (root's files are 0600). */
export async function shareWithDovecot(site: ServerSite, name: string): Promise<void> {
  await grantDovecotAccess(join(site.dir, 'client', name));
}
