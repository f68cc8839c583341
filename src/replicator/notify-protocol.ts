/**
 * The lines Dovecot 2.3 sends when mail changes, in its two dialects (pure: no I/O).
 *
 * - The replication plugin (`mail_plugins = notify replication`), in every mail process, writes
 *   `<user>\t<low|high>\n` to the fifo `replication-notify-fifo` in its base_dir, and for a
 *   synchronous request (`replication_sync_timeout`) connects to the socket `replication-notify`
 *   beside it, writes `<user>\tsync\n` and reads `+\n` (replicated) or `-\n` (not).
 * - The aggregator, which owns those two in a stock Dovecot, forwards to the replicator socket
 *   (`replicator_host`): `VERSION\treplicator-notify\t1\t0\n` once, then
 *   `U\t<user>\t<low|high>\n` or `U\t<user>\tsync\t<id>\n`, answered `+\t<id>\n` or `-\t<id>\n`.
 *
 * Fields are tab-escaped as Dovecot escapes them (\001 then 1, t, r or n; \001 0 is a NUL).
 * Every line is checked before it is believed: a bounded length, UTF-8, a user name that passes
 * the checks every user name from outside gets, a known priority, nothing more or less than
 * the dialect has. A line that fails is a NotifyProtocolError, never anything else.
 */
import { MailferryError } from '../model/errors.js';
import { shownUserName, userNameProblem } from '../server/user-name.js';
import { isPriority, type ReplicationPriority } from './replication-priority.js';

/** Dovecot's aggregator reads lines of up to 8 KiB; a user name is 255 bytes at most, escaped twice that. */
export const MAX_NOTIFY_LINE = 8192;

export const NOTIFY_HANDSHAKE = 'VERSION\treplicator-notify\t1\t0';
const SERVICE = 'replicator-notify';
const MAJOR = 1;

export class NotifyProtocolError extends MailferryError {
  constructor(message: string) {
    super('data', message);
    this.name = 'NotifyProtocolError';
  }
}

/** One change notice: a user and how urgent; `id` is the aggregator's number for a sync request. */
export interface NotifyRequest {
  user: string;
  priority: ReplicationPriority;
  id?: number;
}

export type NotifyDialect = 'plugin' | 'replicator';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A line as a log shows it: escaped, cut short. */
export function shownLine(line: Uint8Array | string): string {
  const text = typeof line === 'string' ? line : Buffer.from(line).toString('latin1');
  const cut = text.length > 60 ? `${text.slice(0, 60)}...` : text;
  return JSON.stringify(cut);
}

function textOf(line: Uint8Array): string {
  if (line.length > MAX_NOTIFY_LINE) throw new NotifyProtocolError(`a line of ${line.length} bytes (at most ${MAX_NOTIFY_LINE})`);
  try {
    return utf8.decode(line);
  } catch {
    throw new NotifyProtocolError(`a line that is not UTF-8: ${shownLine(line)}`);
  }
}

const ESCAPES: Record<string, string> = { '0': '\0', '1': '\x01', t: '\t', r: '\r', n: '\n' };

export function tabUnescape(field: string): string {
  if (!field.includes('\x01')) return field;
  let out = '';
  for (let i = 0; i < field.length; i++) {
    const c = field[i]!;
    if (c !== '\x01') {
      out += c;
      continue;
    }
    const next = field[++i];
    if (next === undefined) throw new NotifyProtocolError(`a field ending in half an escape: ${shownLine(field)}`);
    // Dovecot takes any other escaped character as itself.
    out += ESCAPES[next] ?? next;
  }
  return out;
}

export function tabEscape(field: string): string {
  return field.replace(/[\x01\t\r\n]/g, (c) => `\x01${{ '\x01': '1', '\t': 't', '\r': 'r', '\n': 'n' }[c]}`);
}

function fieldsOf(line: Uint8Array): string[] {
  return textOf(line).split('\t').map(tabUnescape);
}

function userOf(field: string): string {
  const problem = userNameProblem(field);
  if (problem !== undefined) throw new NotifyProtocolError(`user name ${shownUserName(field)} ${problem}`);
  return field;
}

function priorityOf(field: string): ReplicationPriority {
  if (!isPriority(field)) throw new NotifyProtocolError(`unknown priority ${shownLine(field)} (expected none, low, high or sync)`);
  return field;
}

/** `<user>\t<priority>`, as the plugin writes it to the fifo and the socket. */
export function decodePluginLine(line: Uint8Array): NotifyRequest {
  const f = fieldsOf(line);
  if (f.length !== 2) throw new NotifyProtocolError(`expected <user> TAB <priority>, got ${f.length} field${f.length === 1 ? '' : 's'}: ${shownLine(line)}`);
  return { user: userOf(f[0]!), priority: priorityOf(f[1]!) };
}

/**
 * Whether a connection's first line opens the replicator dialect (the aggregator's): VERSION and
 * two fields or more (a wrong one is then refused as such). A user named VERSION sends the
 * plugin's two fields.
 */
export function isHandshake(line: Uint8Array): boolean {
  const b = Buffer.from(line.buffer, line.byteOffset, line.byteLength);
  let tabs = 0;
  for (let i = b.indexOf(9); i >= 0; i = b.indexOf(9, i + 1)) tabs++;
  return b.subarray(0, 8).toString('latin1') === 'VERSION\t' && tabs >= 2;
}

/** `VERSION\treplicator-notify\t<major>\t<minor>`: major 1 is the one there is. */
export function decodeHandshake(line: Uint8Array): { major: number; minor: number } {
  const f = textOf(line).split('\t');
  if (f.length !== 4 || f[0] !== 'VERSION' || !/^\d{1,9}$/.test(f[2]!) || !/^\d{1,9}$/.test(f[3]!)) {
    throw new NotifyProtocolError(`not a VERSION line: ${shownLine(line)}`);
  }
  if (f[1] !== SERVICE || Number(f[2]) !== MAJOR) {
    throw new NotifyProtocolError(`a client of ${shownLine(f[1]!)} version ${f[2]}, not ${SERVICE} version ${MAJOR}`);
  }
  return { major: Number(f[2]), minor: Number(f[3]) };
}

/** `U\t<user>\t<priority>[\t<id>]`, the id with (and only with) sync. */
export function decodeReplicatorLine(line: Uint8Array): NotifyRequest {
  const f = fieldsOf(line);
  if (f[0] !== 'U') throw new NotifyProtocolError(`unknown command ${shownLine(f[0]!)} (expected U)`);
  if (f.length < 3 || f.length > 4) throw new NotifyProtocolError(`expected U TAB <user> TAB <priority> [TAB <id>]: ${shownLine(line)}`);
  const user = userOf(f[1]!);
  const priority = priorityOf(f[2]!);
  if (priority !== 'sync') {
    if (f.length !== 3) throw new NotifyProtocolError(`an id with priority ${priority}: ${shownLine(line)}`);
    return { user, priority };
  }
  const id = f[3];
  if (id === undefined || !/^\d{1,10}$/.test(id) || Number(id) > 0xffffffff) throw new NotifyProtocolError(`a sync request without a valid id: ${shownLine(line)}`);
  return { user, priority, id: Number(id) };
}

export function decodeLine(line: Uint8Array, dialect: NotifyDialect): NotifyRequest {
  return dialect === 'plugin' ? decodePluginLine(line) : decodeReplicatorLine(line);
}

export function encodePluginLine(r: NotifyRequest): string {
  return `${tabEscape(r.user)}\t${r.priority}\n`;
}

export function encodeReplicatorLine(r: NotifyRequest): string {
  return `U\t${tabEscape(r.user)}\t${r.priority}${r.priority === 'sync' ? `\t${r.id ?? 0}` : ''}\n`;
}

/** The answer to a sync request: the plugin's bare `+`/`-`, the aggregator's with its id. */
export function encodeSyncReply(ok: boolean, id?: number): string {
  return id === undefined ? `${ok ? '+' : '-'}\n` : `${ok ? '+' : '-'}\t${id}\n`;
}

/** Stands for a line longer than the bound, in place of its bytes. */
export const TOO_LONG = Symbol('too long');

/**
 * Cuts a byte stream into lines (a trailing CR dropped, as Dovecot's reader does). A line
 * longer than `max` is given as TOO_LONG once, and its bytes up to the next LF are dropped
 * without being kept, so a writer that never ends its line costs no memory.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;

  constructor(private readonly max = MAX_NOTIFY_LINE) {}

  push(chunk: Uint8Array): (Buffer | typeof TOO_LONG)[] {
    const out: (Buffer | typeof TOO_LONG)[] = [];
    let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (;;) {
      const nl = data.indexOf(0x0a);
      const piece = nl < 0 ? data : data.subarray(0, nl);
      if (!this.skipping) {
        // +1: the CR the line may end with.
        if (this.size + piece.length > this.max + 1) {
          out.push(TOO_LONG);
          this.parts = [];
          this.size = 0;
          this.skipping = true;
        } else {
          this.parts.push(Buffer.from(piece));
          this.size += piece.length;
        }
      }
      if (nl < 0) break;
      if (!this.skipping) {
        let line = Buffer.concat(this.parts, this.size);
        if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
        if (line.length > this.max) out.push(TOO_LONG);
        else out.push(line);
      }
      this.parts = [];
      this.size = 0;
      this.skipping = false;
      data = data.subarray(nl + 1);
    }
    return out;
  }

  /** Bytes held of a line not yet ended. */
  get pending(): number {
    return this.size;
  }
}
