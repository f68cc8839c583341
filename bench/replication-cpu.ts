/**
 * CPU of everything one side of the replication case runs, from cpuacct cgroups (v1): a process
 * put in a group takes every child it forks along, so short-lived processes (Dovecot's
 * doveadm-server serves one connection and exits) are counted too, which a /proc walk misses.
 * A process moves itself in through a wrapper script (`cgexec GROUP CMD...`), the way a Dovecot
 * service's `executable` can name one. Without a writable cpuacct hierarchy the figures are
 * missing (undefined), not guessed.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CPUACCT = '/sys/fs/cgroup/cpuacct';

export class CpuGroups {
  readonly root: string;
  readonly wrapper: string;
  readonly available: boolean;
  private readonly made: string[] = [];
  private readonly marks = new Map<string, number>();

  /** `dir` holds the wrapper script. */
  constructor(dir: string, name: string) {
    this.root = join(CPUACCT, name);
    this.wrapper = join(dir, 'cgexec');
    let ok = false;
    try {
      mkdirSync(this.root, { recursive: true });
      this.made.push(this.root);
      ok = existsSync(join(this.root, 'cpuacct.usage'));
    } catch {
      ok = false;
    }
    this.available = ok;
    // Without the hierarchy the wrapper only execs, so the same command lines run either way.
    writeFileSync(this.wrapper, ok
      ? `#!/bin/sh\necho $$ > ${this.root}/"$1"/cgroup.procs || exit 71\nshift\nexec "$@"\n`
      : '#!/bin/sh\nshift\nexec "$@"\n');
    chmodSync(this.wrapper, 0o755);
  }

  /** Makes group `name`; processes of any uid may move themselves into it. */
  add(name: string): void {
    if (!this.available) return;
    const dir = join(this.root, name);
    mkdirSync(dir, { recursive: true });
    this.made.push(dir);
    // Dovecot's services exec their wrapper as root, but a service may run as another user.
    chmodSync(join(dir, 'cgroup.procs'), 0o666);
  }

  /** The argv prefix that runs a command inside group `name`. */
  prefix(name: string): string[] {
    return [this.wrapper, name];
  }

  /** Nanoseconds of CPU (user + system) used in group `name` so far. */
  private usage(name: string): number | undefined {
    if (!this.available) return undefined;
    return Number(readFileSync(join(this.root, name, 'cpuacct.usage'), 'utf8').trim());
  }

  /** Starts a measurement of every group. */
  mark(names: string[]): void {
    for (const n of names) this.marks.set(n, this.usage(n) ?? NaN);
  }

  /** CPU seconds group `name` used since mark(). */
  since(name: string): number | undefined {
    const now = this.usage(name), then = this.marks.get(name);
    return now === undefined || then === undefined || !Number.isFinite(then) ? undefined : (now - then) / 1e9;
  }

  /**
   * Removes the groups once empty: a stopped Dovecot's master is gone before its config, log
   * and auth processes are, so a group still busy is tried again for up to 5 s.
   */
  async remove(): Promise<void> {
    for (const dir of this.made.reverse()) {
      for (let tries = 0; ; tries++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || tries >= 50) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    this.made.length = 0;
  }
}
