/**
 * A private Dovecot master started by the benchmark: `dovecot -F -c CONF` in the foreground, so
 * it ends with us (SIGKILL on our exit if it was not stopped), ready once a socket or file it
 * makes exists. `prefix` runs it under a wrapper (a command that execs its arguments).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { sleep } from './measure.js';

export class DovecotInstance {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private readonly kill = () => this.child?.kill('SIGKILL');

  constructor(readonly name: string, readonly conf: string, private readonly prefix: string[] = []) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the master and waits until `readyPath` exists (15 s at most). */
  async start(readyPath: string): Promise<void> {
    const argv = [...this.prefix, 'dovecot', '-F', '-c', this.conf];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    process.once('exit', this.kill);
    const deadline = Date.now() + 15_000;
    while (!existsSync(readyPath)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the ${this.name} Dovecot did not start (${this.conf}): ${stderr.trim()}`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    if (!this.child) return;
    this.child.kill('SIGTERM');
    await this.exited;
    process.removeListener('exit', this.kill);
    this.child = undefined;
  }
}
