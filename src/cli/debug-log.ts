/**
 * `-D`: timestamped detail on stderr, on success too, so a bug report's stderr shows what was
 * planned per mailbox and where the time went.
 */
import { performance } from 'node:perf_hooks';

export class DebugLog {
  private readonly started = performance.now();
  private open: { what: string; since: number } | undefined;

  constructor(
    readonly enabled: boolean,
    private readonly out: NodeJS.WritableStream = process.stderr,
  ) {}

  line(message: string): void {
    if (!this.enabled) return;
    this.out.write(`mailferry: debug: +${((performance.now() - this.started) / 1000).toFixed(3)}s ${message}\n`);
  }

  /** Starts timing a step (a mailbox); the previous one, if any, is reported as done. */
  step(what: string): void {
    this.endStep();
    if (this.enabled) this.open = { what, since: performance.now() };
  }

  endStep(): void {
    if (!this.open) return;
    const { what, since } = this.open;
    this.open = undefined;
    this.line(`${what}: done in ${Math.round(performance.now() - since)} ms`);
  }
}
