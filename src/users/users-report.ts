/**
 * What a run over many users shows: a line per user as each ends (user, result, counts, time)
 * or, with --json, one JSON object per line; a progress line with -v; the totals; and the exit
 * status folded from every user's: 0 when all succeeded, 2 when some must run again and none
 * failed, else the most common failure's status.
 */
import { human } from '../cli/progress.js';
import type { UserResult } from './user-runner.js';

/** Failed users named at the end; past this many only counted, so 100k failures stay small. */
const NAMED_FAILURES = 50;

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export class UsersReport {
  private readonly started = Date.now();
  private done = 0;
  private failed = 0;
  private incomplete = 0;
  private skipped = 0;
  private running = 0;
  private messages = 0;
  private bytes = 0;
  private readonly failureCodes = new Map<number, number>();
  private readonly failedNames: string[] = [];
  private lastDraw = this.started;
  private readonly tty: boolean;

  constructor(
    private readonly json: boolean,
    private readonly progress: boolean,
    private readonly total: number | undefined,
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly err: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(err.isTTY);
  }

  userStarted(): void {
    this.running++;
    this.draw(false);
  }

  result(r: UserResult): void {
    if (r.ran) this.running--;
    this.done++;
    if (r.status === 'failed') {
      this.failed++;
      this.failureCodes.set(r.exitCode, (this.failureCodes.get(r.exitCode) ?? 0) + 1);
      if (this.failedNames.length < NAMED_FAILURES) this.failedNames.push(r.user);
    } else if (r.status === 'incomplete') this.incomplete++;
    else if (r.status === 'skipped') this.skipped++;
    const c = r.counts;
    if (c) {
      this.messages += c.saved;
      this.bytes += c.bytes;
    }
    this.clearBar();
    if (this.json) {
      this.out.write(`${JSON.stringify({ user: r.user, result: r.status, exitCode: r.exitCode, ...(r.error ? { error: r.error } : {}), ...(c ?? {}), ms: r.ms })}\n`);
    } else if (r.status === 'failed') {
      this.err.write(`mailferry: user ${r.user}: failed (exit ${r.exitCode}): ${r.error ?? ''}\n`);
      this.out.write(`${r.user}: failed (exit ${r.exitCode})\n`);
    } else if (r.status === 'skipped') {
      this.out.write(`${r.user}: skipped: ${r.error ?? ''}\n`);
    } else {
      const counts = c ? `${c.mailboxes} mailboxes (${c.skipped} unchanged), ${c.saved} messages copied (${c.bytes} bytes), ${c.flagUpdates} flag updates, ${c.expunged} expunges, ${c.treeActions} mailbox changes` : '';
      this.out.write(`${r.user}: ${r.status === 'ok' ? 'ok' : 'incomplete (exit 2)'}, ${counts}, ${(r.ms / 1000).toFixed(2)}s\n`);
    }
    this.draw(false);
  }

  private line(): string {
    const secs = Math.max((Date.now() - this.started) / 1000, 0.001);
    const rate = this.messages / secs;
    let eta = '';
    if (this.total !== undefined && this.done > 0 && this.done < this.total) {
      eta = `, ETA ${duration(((Date.now() - this.started) / this.done) * (this.total - this.done))}`;
    }
    const of = this.total === undefined ? '' : `/${this.total}`;
    return `users ${this.done}${of} done (${this.failed} failed), ${this.running} running; ${this.messages} messages, ${human(this.bytes)}, ${Math.round(rate)} msg/s${eta}`;
  }

  private clearBar(): void {
    if (this.progress && this.tty) this.err.write('\r\x1b[K');
  }

  private draw(final: boolean): void {
    if (!this.progress) return;
    const now = Date.now();
    if (this.tty) {
      if (!final && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      this.err.write(`\r\x1b[K${this.line()}${final ? '\n' : ''}`);
      return;
    }
    if (!final && now - this.lastDraw < 5000) return;
    this.lastDraw = now;
    this.err.write(`mailferry: ${final ? 'done' : 'progress'}: ${this.line()}\n`);
  }

  /** Prints the totals and returns the run's exit status. */
  finish(): number {
    this.draw(true);
    const ok = this.done - this.failed - this.incomplete - this.skipped;
    const totals = { users: this.done, ok, incomplete: this.incomplete, failed: this.failed, skipped: this.skipped, messages: this.messages, bytes: this.bytes, ms: Date.now() - this.started };
    if (this.json) this.out.write(`${JSON.stringify({ totals })}\n`);
    else this.out.write(`users: ${this.done} (${ok} ok, ${this.incomplete} incomplete, ${this.failed} failed, ${this.skipped} skipped), ${this.messages} messages copied (${this.bytes} bytes), ${duration(totals.ms)}\n`);
    if (this.failed > 0) {
      const more = this.failed > this.failedNames.length ? ` and ${this.failed - this.failedNames.length} more` : '';
      this.err.write(`mailferry: ${this.failed} of ${this.done} users failed: ${this.failedNames.join(', ')}${more}\n`);
      // The most common failure decides; ties go to the lower status for a stable answer.
      return [...this.failureCodes].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
    }
    return this.incomplete > 0 ? 2 : 0;
  }
}
