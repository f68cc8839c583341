/**
 * The built CLI as a child process, and Maildirs written as a delivery agent writes them, so
 * the command line is tested without any store code in the test process.
 */
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(args: readonly string[], options: { uid?: number; gid?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, '-o', 'mail_fsync=never', ...args], { encoding: 'utf8', ...options });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the CLI; `exited` resolves to its exit status (128 + n when a signal ended it unhandled). */
export function cliChild(args: readonly string[], options: SpawnOptions = {}) {
  const child = spawn(process.execPath, [CLI, '-o', 'mail_fsync=never', ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const output = { stdout: '', stderr: '' };
  child.stdout?.on('data', (c: Buffer) => (output.stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output.stderr += c.toString()));
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15)));
  });
  return { child, output, exited };
}

let serial = 0;

/** Delivers `count` small distinct messages into DIR/new (making DIR a Maildir when needed); returns their subjects. */
export function deliver(dir: string, count: number, tag: string): string[] {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  const subjects: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = serial++;
    const subject = `${tag} ${n}`;
    const body = `From: a@example.com\nTo: b@example.com\nSubject: ${subject}\nMessage-ID: <${tag}.${n}.${process.pid}@example.com>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nmessage ${subject}\n`;
    writeFileSync(join(dir, 'new', `${1700000000 + n}.M${n}P${process.pid}.${tag.replace(/\W/g, '')}`), body);
    subjects.push(subject);
  }
  return subjects;
}

/** Every message file of a Maildir++ tree (INBOX and dot-folders), as `folder/name`. */
export function messageFiles(root: string): string[] {
  const out: string[] = [];
  const folders = ['', ...readdirSync(root).filter((n) => n.startsWith('.') && n !== '.' && n !== '..')];
  for (const f of folders) {
    for (const sub of ['cur', 'new']) {
      let names: string[] = [];
      try {
        names = readdirSync(join(root, f, sub));
      } catch {
        continue;
      }
      out.push(...names.map((n) => `${f || 'INBOX'}/${n}`));
    }
  }
  return out;
}

/** The Subject of every message in a Maildir++ tree, sorted, duplicates kept. */
export function subjectsIn(root: string): string[] {
  return messageFiles(root)
    .map((f) => {
      const [folder, name] = f.split('/') as [string, string];
      const dir = join(root, folder === 'INBOX' ? '' : folder);
      const text = [join(dir, 'cur', name), join(dir, 'new', name)].map((p) => {
        try {
          return readFileSync(p, 'utf8');
        } catch {
          return '';
        }
      }).join('');
      return /^Subject: (.*)$/m.exec(text)?.[1] ?? `? ${f}`;
    })
    .sort();
}
