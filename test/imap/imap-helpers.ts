/**
 * Shared by the IMAP tests: the built CLI, a comparable view of any store, and seeding.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../src/storage/open-store.js';
import type { MailStore, SystemFlag } from '../../src/storage/store.js';
import { readAll, req } from '../contract/store-contract.js';

export const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

export interface CliResult { code: number; stdout: string; stderr: string; ms: number }

export function cli(passwordFile: string | undefined, ...args: string[]): CliResult {
  return cliWithEnv({ MAILFERRY_PASSWORD: '' }, passwordFile, ...args);
}

export function cliWithEnv(env: Record<string, string>, passwordFile: string | undefined, ...args: string[]): CliResult {
  const t = Date.now();
  const pw = passwordFile ? ['--password-file', passwordFile] : [];
  const r = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', ...pw, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t };
}

/** Without blocking this process: needed when the server is reached through a CuttingProxy here. */
export function cliAsync(passwordFile: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const t = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, '-o', 'mail_fsync=never', '--password-file', passwordFile, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - t }));
  });
}

export function passwordFile(dir: string, user: string, password: string): string {
  const f = join(dir, `${user}.password`);
  writeFileSync(f, `${password}\n`);
  return f;
}

export async function withStore<T>(location: string, fn: (s: MailStore) => Promise<T>, passwordFile?: string): Promise<T> {
  const s = await openStore(location, { create: true, fsync: false, passwordFile, warn: () => {} } as never);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/**
 * Per mailbox (name parts joined by '/'): sorted lines `sha1(body) flags keywords receivedDate`,
 * plus the UID when `uids` is set. Bodies are compared byte for byte through their hashes.
 */
export async function snapshot(location: string, opts: { uids?: boolean; passwordFile?: string } = {}): Promise<Record<string, string[]>> {
  return withStore(location, async (s) => {
    const out: Record<string, string[]> = {};
    for (const m of (await s.listMailboxes()).mailboxes) {
      const { messages } = await s.getMessages(m.name);
      const lines: string[] = [];
      for (const x of messages) {
        const body = await readAll(await s.openMessage(m.name, x.uid));
        const sha = createHash('sha1').update(body).digest('hex');
        lines.push(`${opts.uids ? `${x.uid} ` : ''}${sha} ${[...x.flags].sort().join(',')} ${[...x.keywords].sort().join(',')} ${x.receivedDate}`);
      }
      out[m.name.join('/')] = lines.sort();
    }
    return out;
  }, opts.passwordFile);
}

export const FOLDERS: string[][] = [
  ['INBOX'], ['Sent Items'], ['A & B'], ['Entwürfe'], ['日本語'], ['Work'], ['Work', 'Q3'], ['Work', 'Q3', '2024'],
  ['Lists', 'dev'], ['Archive'], ['Junk'], ['emoji 📬'],
];

const FLAG_SETS: SystemFlag[][] = [[], ['\\Seen'], ['\\Seen', '\\Answered'], ['\\Flagged'], ['\\Seen', '\\Draft'], ['\\Deleted', '\\Seen']];
const KEYWORD_SETS: string[][] = [[], [], ['$Label1'], ['work', 'todo'], ['$Forwarded'], []];

/** Spreads `mail` over FOLDERS with varied flags, keywords and received dates. */
export async function seed(location: string, mail: Buffer[], folders = FOLDERS, passwordFile?: string): Promise<void> {
  await withStore(location, async (s) => {
    for (const f of folders) if (f[0] !== 'INBOX' || f.length > 1) await s.createMailbox(f).catch(() => {});
    for (let i = 0; i < folders.length; i++) {
      const part = mail.filter((_, j) => j % folders.length === i);
      await s.saveMessages(folders[i]!, part.map((m, j) => req(m, {
        flags: FLAG_SETS[j % FLAG_SETS.length]!,
        keywords: KEYWORD_SETS[j % KEYWORD_SETS.length]!,
        receivedDate: Date.UTC(2002, j % 12, 1 + (j % 28), j % 24, j % 60, 7),
      })));
    }
  }, passwordFile);
}

/** Corpus messages a CRLF store cannot give back byte for byte (those holding CRLF) are left out. */
export function lfOnly(mail: Buffer[]): Buffer[] {
  return mail.filter((m) => !m.includes('\r\n'));
}

/**
 * A TCP relay in front of the server, to cut connections the way a crashing server or a
 * broken network does. `cutAfter(bytes)` destroys every connection once that many bytes went
 * through (either way) since the call; `down()` also stops accepting, `up()` accepts again.
 */
export class CuttingProxy {
  readonly port: number;
  private server: import('node:net').Server;
  private readonly sockets = new Set<import('node:net').Socket>();
  private budget = Infinity;
  private accepting = true;
  /** Stall instead of cutting: the connections stay open and silent (a hung server). */
  private stallMode = false;
  private readonly stalled = new Set<import('node:net').Socket>();
  cuts = 0;

  private constructor(port: number, server: import('node:net').Server) {
    this.port = port;
    this.server = server;
  }

  static async start(target: number): Promise<CuttingProxy> {
    const net = await import('node:net');
    const proxy: CuttingProxy = new CuttingProxy(0, net.createServer());
    const listen = (srv: import('node:net').Server, port: number) => new Promise<number>((resolve) => srv.listen(port, '127.0.0.1', () => resolve((srv.address() as { port: number }).port)));
    const handler = (client: import('node:net').Socket) => {
      if (!proxy.accepting) return client.destroy();
      const upstream = net.connect(target, '127.0.0.1');
      for (const s of [client, upstream]) {
        proxy.sockets.add(s);
        s.on('close', () => proxy.sockets.delete(s));
        s.on('error', () => {});
      }
      const relay = (from: import('node:net').Socket, to: import('node:net').Socket) => from.on('data', (b: Buffer) => {
        if (proxy.stalled.has(from)) return;
        proxy.budget -= b.length;
        if (proxy.budget <= 0) return proxy.cut();
        to.write(b);
      });
      relay(client, upstream);
      relay(upstream, client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    };
    proxy.server.on('connection', handler);
    (proxy as { port: number }).port = await listen(proxy.server, 0);
    return proxy;
  }

  cutAfter(bytes: number): void {
    this.stallMode = false;
    this.budget = bytes;
  }

  cut(): void {
    this.budget = Infinity;
    this.cuts++;
    if (this.stallMode) {
      for (const s of this.sockets) this.stalled.add(s);
      return;
    }
    for (const s of this.sockets) s.destroy();
  }

  stallAfter(bytes: number): void {
    this.stallMode = true;
    this.budget = bytes;
  }

  down(): void {
    this.accepting = false;
  }

  up(): void {
    this.accepting = true;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
