/**
 * GNU mailutils' imap4d (Debian package mailutils-imap4d) on loopback for tests: a TCP server
 * that starts one `imap4d --inetd --preauth` per connection, serving an mbox spool in a
 * temporary directory as the user running the tests. imap4d has no UIDPLUS, rewrites header
 * whitespace and upper-cases HEADER.FIELDS names, so it is the real server behind the hostile
 * server's mailutils mode. With `log`, `traffic` collects both directions of every connection
 * and `commands` what the clients asked for.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';

export const IMAP4D_PACKAGE = 'mailutils-imap4d';

/** The imap4d binary, or undefined when it is not installed. */
export function findImap4d(): string | undefined {
  return ['/usr/sbin/imap4d', 'imap4d'].find((b) => spawnSync(b, ['--version']).status === 0);
}

export class Imap4d {
  readonly traffic: string[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly children = new Set<ChildProcess>();

  private constructor(private readonly server: Server, readonly port: number, readonly spool: string) {}

  /** `dir`: an empty directory the spool (INBOX and the other mailboxes) is created in. */
  static async start(dir: string, opts: { log?: boolean } = {}): Promise<Imap4d> {
    const binary = findImap4d();
    if (!binary) throw new Error(`imap4d is not installed: install the Debian package ${IMAP4D_PACKAGE}`);
    const spool = join(dir, 'spool');
    mkdirSync(join(spool, 'mail'), { recursive: true });
    const conf = join(dir, 'imap4d.conf');
    writeFileSync(conf, [
      'mailbox {',
      `  mailbox-pattern "mbox:${join(spool, 'inbox')}";`,
      '};',
      'namespace personal {',
      '  prefix "" {',
      `    directory "${join(spool, 'mail')}";`,
      '    delimiter "/";',
      '  };',
      '};',
      '',
    ].join('\n'));
    let self: Imap4d | undefined;
    let connection = 0;
    const server = createServer((sock) => {
      const id = ++connection;
      const child = spawn(binary, ['--inetd', '--preauth', `--config-file=${conf}`], { stdio: ['pipe', 'pipe', 'ignore'] });
      self!.sockets.add(sock);
      self!.children.add(child);
      if (opts.log) {
        sock.on('data', (b: Buffer) => self!.traffic.push(`${id} C: ${b.toString('latin1')}`));
        child.stdout!.on('data', (b: Buffer) => self!.traffic.push(`${id} S: ${b.toString('latin1')}`));
      }
      sock.pipe(child.stdin!);
      child.stdout!.pipe(sock);
      child.stdin!.on('error', () => {});
      sock.on('error', () => child.kill());
      sock.on('close', () => child.kill());
      child.on('exit', () => {
        self!.children.delete(child);
        sock.destroy();
      });
      sock.on('close', () => self!.sockets.delete(sock));
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    self = new Imap4d(server, port, spool);
    return self;
  }

  /** Every client command of every connection so far, as `NAME` or `UID NAME` (APPEND, UID STORE, ...). */
  commands(): string[] {
    const sent = new Map<string, string>();
    for (const chunk of this.traffic) {
      const m = /^(\d+) C: ([\s\S]*)$/.exec(chunk);
      if (m) sent.set(m[1]!, (sent.get(m[1]!) ?? '') + m[2]!);
    }
    const out: string[] = [];
    for (const text of sent.values()) {
      let at = 0;
      let first = true;
      while (at < text.length) {
        const end = text.indexOf('\r\n', at);
        const line = text.slice(at, end < 0 ? text.length : end);
        if (first) {
          const c = /^\S+ ((?:UID )?[A-Za-z]+)/.exec(line);
          if (c) out.push(c[1]!.toUpperCase());
        }
        // A literal's bytes follow its line; the command goes on after them.
        const literal = /\{(\d+)\+?\}$/.exec(line);
        at = end < 0 ? text.length : end + 2 + (literal ? Number(literal[1]) : 0);
        first = !literal;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const exited = [...this.children].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r))));
    for (const c of this.children) c.kill();
    await Promise.all(exited);
    await new Promise((r) => this.server.close(r));
  }
}
