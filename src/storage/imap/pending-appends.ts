/**
 * Messages handed to the server whose UIDs we have not recorded yet. An APPEND that was sent
 * when the connection dropped (or the process died) may or may not have been stored; the next
 * look at the mailbox matches new server messages against this journal by header hash and
 * size (the exact CRLF size the server reports), so they get the GUID and UID they were
 * saved with instead of coming back as unknown mail, and nothing is appended twice.
 */
import { readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SystemFlag } from '../store.js';

export interface PendingAppend {
  hash: string;
  /** Size as sent (CRLF). */
  wireSize: number;
  /** Size as the engine sees it (LF). */
  size: number;
  /** Empty when the server's X-GUID is to be used. */
  guid: string;
  uid: number;
  flags: SystemFlag[];
  keywords: string[];
  receivedDate: number;
}

type Journal = Record<string, PendingAppend[]>;

export class PendingAppends {
  private readonly path: string;
  private journal: Journal;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'pending-appends.json');
    try {
      this.journal = JSON.parse(readFileSync(this.path, 'utf8')) as Journal;
    } catch {
      this.journal = {};
    }
  }

  of(mailboxGuid: string): PendingAppend[] {
    return this.journal[mailboxGuid] ?? [];
  }

  set(mailboxGuid: string, items: PendingAppend[]): void {
    if (items.length === 0 && !(mailboxGuid in this.journal)) return;
    if (items.length === 0) delete this.journal[mailboxGuid];
    else this.journal[mailboxGuid] = items;
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.journal));
    renameSync(tmp, this.path);
  }

  /** Removes and returns the first entry with this hash and wire size. */
  take(mailboxGuid: string, hash: string, wireSize: number): PendingAppend | undefined {
    const items = this.of(mailboxGuid);
    const i = items.findIndex((p) => p.hash === hash && p.wireSize === wireSize);
    if (i < 0) return undefined;
    const [hit] = items.splice(i, 1);
    this.set(mailboxGuid, items);
    return hit;
  }
}
