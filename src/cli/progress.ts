/**
 * `-v` progress on stderr: a redrawn bar on a terminal, a plain line every few seconds and
 * at the end otherwise (for logs and cron mail).
 */
import { formatMailboxName } from '../model/mailbox-name.js';
import type { MailboxName } from '../storage/store.js';

const PLAIN_INTERVAL_MS = 5000;

export function human(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${n.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

export class Progress {
  private readonly started = Date.now();
  private messages = 0;
  private bytes = 0;
  private planned = 0;
  private mailboxes = 0;
  private unchanged = 0;
  private current = '';
  /** From the start: a line at second zero would only ever say zeros. */
  private lastPlain = this.started;
  private readonly tty: boolean;

  constructor(
    private readonly separator: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  /** A mailbox starts with this many messages to copy. */
  mailbox(name: MailboxName, toCopy: number): void {
    this.mailboxes++;
    this.planned += toCopy;
    this.current = formatMailboxName(name, this.separator);
    this.draw(false);
  }

  /** A mailbox neither side changed: counted, not compared. */
  skippedMailbox(): void {
    this.mailboxes++;
    this.unchanged++;
  }

  copied(size: number): void {
    this.messages++;
    this.bytes += size;
    this.draw(false);
  }

  done(): void {
    this.draw(true);
    if (this.tty) this.out.write('\n');
  }

  private line(): string {
    const secs = Math.max((Date.now() - this.started) / 1000, 0.001);
    const rate = Math.round(this.messages / secs);
    return `${this.mailboxes} mailboxes (${this.unchanged} unchanged), ${this.messages}/${this.planned} messages, ${human(this.bytes)}, ${rate} msg/s, ${human(this.bytes / secs)}/s`;
  }

  private draw(final: boolean): void {
    const now = Date.now();
    if (this.tty) {
      if (!final && now - this.lastPlain < 100) return;
      this.lastPlain = now;
      const width = 24;
      const filled = this.planned === 0 ? width : Math.round((this.messages / this.planned) * width);
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
      this.out.write(`\r\x1b[K${bar} ${this.line()}  ${final ? '' : this.current}`);
      return;
    }
    if (!final && now - this.lastPlain < PLAIN_INTERVAL_MS) return;
    this.lastPlain = now;
    this.out.write(`mailferry: ${final ? 'done' : 'progress'}: ${this.line()}${final ? '' : ` (in ${this.current})`}\n`);
  }
}
