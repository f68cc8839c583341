/**
 * Messages handed to the server whose UIDs we have not recorded yet. An APPEND that was sent
 * when the connection dropped (or the process died) may or may not have been stored; the next
 * look at the mailbox matches new server messages against this journal by header hash and
 * size (the exact CRLF size the server reports), so they get the GUID and UID they were
 * saved with instead of coming back as unknown mail, and nothing is appended twice.
 *
 * The journal is a log of lines, each one mailbox's whole list, appended and never rewritten
 * in place: a save costs one short append per batch rather than a new file and a rename
 * (which cost more than the rest of the client's work on a large upload). The last line may
 * be torn by a crash and is then skipped; it was written before its APPEND was sent, so
 * nothing it named can have reached the server. The log is emptied when nothing is pending
 * and compacted when it grows large. Entries whose messages are already recorded in the index
 * may be dropped in memory only (`forget`) and written with the next change: a crash before
 * that leaves entries the next look at the mailbox drops, as it drops any it does not find.
 */
import { appendFileSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SystemFlag } from '../store.js';

export interface PendingAppend {
  /** The matching hash (header-hash.ts); the v3 header hash in journals of earlier versions. */
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

interface Line {
  m: string;
  items: PendingAppend[];
}

/** Past this size the log is rewritten with only what is pending. */
const COMPACT_AT = 1024 * 1024;

export class PendingAppends {
  private readonly path: string;
  /** The single JSON file earlier versions rewrote; read once, removed at the first write. */
  private readonly legacyPath: string;
  private legacy = false;
  private readonly journal: Journal = {};
  private readonly unwritten = new Set<string>();
  private bytes = 0;
  /** The log ends in a line a crash cut short: the next line must not be glued to it. */
  private torn = false;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'pending-appends.log');
    this.legacyPath = join(dir, 'pending-appends.json');
    try {
      Object.assign(this.journal, JSON.parse(readFileSync(this.legacyPath, 'utf8')) as Journal);
      this.legacy = true;
    } catch {
      // none, or unreadable: nothing was pending there
    }
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return;
    }
    this.bytes = Buffer.byteLength(text);
    this.torn = text.length > 0 && !text.endsWith('\n');
    for (const l of text.split('\n')) {
      let line: Line;
      try {
        line = JSON.parse(l) as Line;
      } catch {
        continue; // empty, or torn by a crash
      }
      if (typeof line?.m !== 'string' || !Array.isArray(line.items)) continue;
      if (line.items.length > 0) this.journal[line.m] = line.items;
      else delete this.journal[line.m];
    }
  }

  of(mailboxGuid: string): PendingAppend[] {
    return this.journal[mailboxGuid] ?? [];
  }

  /** Replaces a mailbox's list and writes it, with any change `forget` left unwritten. */
  set(mailboxGuid: string, items: PendingAppend[]): void {
    if (items.length === 0 && !(mailboxGuid in this.journal) && this.unwritten.size === 0) return;
    this.replace(mailboxGuid, items);
    this.persist();
  }

  /** Drops entries whose messages are recorded in the index; written with the next change. */
  forget(mailboxGuid: string, items: ReadonlySet<PendingAppend>): void {
    if (items.size === 0) return;
    this.replace(mailboxGuid, this.of(mailboxGuid).filter((p) => !items.has(p)));
  }

  /** Writes what `forget` left in memory only. */
  persist(): void {
    if (this.unwritten.size === 0) return;
    const pending = Object.keys(this.journal);
    if (pending.length === 0) {
      writeFileSync(this.path, '');
      this.bytes = 0;
      this.torn = false;
      this.dropLegacy();
    } else if (this.legacy || this.bytes > COMPACT_AT) {
      const text = pending.map((m) => this.line(m)).join('');
      const tmp = `${this.path}.tmp`;
      writeFileSync(tmp, text);
      renameSync(tmp, this.path);
      this.bytes = Buffer.byteLength(text);
      this.torn = false;
      this.dropLegacy();
    } else {
      const text = (this.torn ? '\n' : '') + [...this.unwritten].map((m) => this.line(m)).join('');
      appendFileSync(this.path, text);
      this.bytes += Buffer.byteLength(text);
      this.torn = false;
    }
    this.unwritten.clear();
  }

  /**
   * Removes and returns the first entry with this wire size and one of these hashes: the
   * message's matching hash, or the v3 header hash journals of earlier versions hold.
   */
  take(mailboxGuid: string, hashes: readonly string[], wireSize: number): PendingAppend | undefined {
    const items = this.of(mailboxGuid);
    const i = items.findIndex((p) => hashes.includes(p.hash) && p.wireSize === wireSize);
    if (i < 0) return undefined;
    const hit = items[i];
    this.set(mailboxGuid, items.filter((_, k) => k !== i));
    return hit;
  }

  private replace(mailboxGuid: string, items: PendingAppend[]): void {
    if (items.length === 0) delete this.journal[mailboxGuid];
    else this.journal[mailboxGuid] = items;
    this.unwritten.add(mailboxGuid);
  }

  private line(m: string): string {
    return `${JSON.stringify({ m, items: this.of(m) } satisfies Line)}\n`;
  }

  private dropLegacy(): void {
    if (!this.legacy) return;
    try {
      unlinkSync(this.legacyPath);
    } catch {
      // already gone
    }
    this.legacy = false;
  }
}
