/**
 * A small IMAP4rev1 server on 127.0.0.1 for the IMAP store's tests against servers that
 * misbehave: it speaks just what imapflow and the store send (greeting, CAPABILITY, LOGIN,
 * LIST/LSUB, (UN)SUBSCRIBE, STATUS, SELECT/EXAMINE, UID FETCH, UID SEARCH, APPEND with MULTIAPPEND,
 * NOOP, LOGOUT) over one flat set of mailboxes, and misbehaves as `HostileScript` says: bodies that
 * are not the size it announced, answers that trickle or never come, refused internal dates,
 * the same UID answered twice, X-GUIDs no store can keep, and the ways of GNU mailutils' imap4d
 * (no UIDPLUS, header whitespace rewritten on APPEND, field names upper-cased in HEADER.FIELDS).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { formatInternalDate } from '../../src/storage/imap/internal-date.js';

export interface HostileMessage {
  uid: number;
  /** As stored, CRLF. */
  body: Buffer;
  flags: string[];
  internalDate: number;
}

/** What BODY[] sends instead of the message: bytes, NIL (null), or `bytes` bytes of filler. */
export type BodyAnswer = Buffer | null | { bytes: number };

export interface HostileScript {
  /** RFC822.SIZE as announced (default: the true size). */
  announcedSize?: (m: HostileMessage) => number;
  /** What BODY[] sends (default: the message). */
  body?: (m: HostileMessage) => BodyAnswer;
  /** Body FETCH answers go out one byte every this many ms. */
  trickleMs?: number;
  /** Body FETCH commands get no answer at all. */
  silentBodies?: boolean;
  /** APPEND of a message with this internal date is refused (`NO Invalid date-time`, or BAD). */
  refuseDate?: (ms: number) => 'NO' | 'BAD' | undefined;
  /** A refused MULTIAPPEND keeps the messages before the refused one (not all-or-nothing). */
  partialMultiappend?: boolean;
  /** FETCH X-GUID is answered with this (as a quoted string), as Dovecot does; refused (BAD) without it. */
  xGuid?: (m: HostileMessage) => string;
  /**
   * As GNU mailutils' imap4d: no UIDPLUS (APPEND answers no APPENDUID), each header line of an
   * appended message stored as `Name: value` (the whitespace after the colon one space, runs of
   * spaces and tabs in values one space, trailing whitespace cut, folded lines joined), and
   * field names upper-cased in BODY[HEADER.FIELDS] answers.
   */
  mailutils?: boolean;
}

const BASE_CAPS = 'IMAP4rev1 LITERAL+ MULTIAPPEND';
const UIDVALIDITY = 1700000000;
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

type Token = string | Buffer | Token[];

/** Atoms (with any [...] section kept whole), quoted strings, literals and lists. */
function tokenize(text: string, literals: Buffer[]): Token[] {
  const stack: Token[][] = [[]];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === ' ') i++;
    else if (ch === '(') {
      const list: Token[] = [];
      stack.at(-1)!.push(list);
      stack.push(list);
      i++;
    } else if (ch === ')') {
      if (stack.length > 1) stack.pop();
      i++;
    } else if (ch === '"') {
      let s = '';
      for (i++; i < text.length && text[i] !== '"'; i++) s += text[i] === '\\' ? text[++i] : text[i];
      stack.at(-1)!.push(s);
      i++;
    } else if (ch === '\u0000') {
      stack.at(-1)!.push(literals[Number(text.slice(i + 1, text.indexOf('\u0001', i)))]!);
      i = text.indexOf('\u0001', i) + 1;
    } else {
      let s = '';
      let depth = 0;
      for (; i < text.length; i++) {
        const c = text[i]!;
        if (c === '[') depth++;
        else if (c === ']') depth--;
        else if (depth === 0 && (c === ' ' || c === '(' || c === ')')) break;
        s += c;
      }
      stack.at(-1)!.push(s);
    }
  }
  return stack[0]!;
}

function parseDate(s: string): number {
  const m = /^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s);
  if (!m) return NaN;
  const utc = Date.UTC(+m[3]!, MONTHS.indexOf(m[2]!.toLowerCase()), +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  return utc - (+m[8]! * 60 + +m[9]!) * 60_000 * (m[7] === '-' ? -1 : 1);
}

function inSet(set: string, uid: number, max: number): boolean {
  return set.split(',').some((part) => {
    const [a, b] = part.split(':').map((x) => (x === '*' ? max : Number(x)));
    const lo = Math.min(a!, b ?? a!);
    const hi = Math.max(a!, b ?? a!);
    return uid >= lo && uid <= hi;
  });
}

const text = (t: Token | undefined): string => (Buffer.isBuffer(t) ? t.toString('latin1') : typeof t === 'string' ? t : '');

export class HostileImapServer {
  readonly port: number;
  readonly mailboxes = new Map<string, HostileMessage[]>([['INBOX', []]]);
  private uidNext = new Map<string, number>([['INBOX', 1]]);
  private readonly sockets = new Set<Socket>();
  readonly subscribed = new Set<string>();
  /** Commands received, by name (`UID FETCH`, `APPEND`...), for tests that count them. */
  readonly seen: string[] = [];
  connections = 0;
  /** UID FETCH commands that asked for whole bodies. */
  bodyFetches = 0;

  private constructor(
    private readonly server: Server,
    port: number,
    public script: HostileScript,
  ) {
    this.port = port;
  }

  static async start(script: HostileScript = {}): Promise<HostileImapServer> {
    const server = createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    const s = new HostileImapServer(server, port, script);
    server.on('connection', (sock) => s.serve(sock));
    return s;
  }

  private get caps(): string {
    return this.script.mailutils ? 'IMAP4rev1 LITERAL+' : `${BASE_CAPS} UIDPLUS`;
  }

  /** Adds a message (LF or CRLF; stored CRLF) and returns its UID. */
  add(mailbox: string, body: Buffer | string, internalDate = Date.UTC(2020, 0, 1)): number {
    const crlf = Buffer.from(Buffer.from(body).toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
    const list = this.mailboxes.get(mailbox) ?? [];
    this.mailboxes.set(mailbox, list);
    const uid = this.uidNext.get(mailbox) ?? 1;
    this.uidNext.set(mailbox, uid + 1);
    list.push({ uid, body: crlf, flags: [], internalDate });
    return uid;
  }

  /**
   * Adds a message under the UID of the mailbox's last one, as a server with a broken index
   * does: two sequence numbers, one UID, both in every FETCH and SEARCH answer.
   */
  addSameUid(mailbox: string, body: Buffer | string): void {
    const list = this.mailboxes.get(mailbox)!;
    const last = list.at(-1)!;
    const crlf = Buffer.from(Buffer.from(body).toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
    list.push({ uid: last.uid, body: crlf, flags: ['\\Seen'], internalDate: last.internalDate });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(sock: Socket): void {
    this.connections++;
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
    const conn = { selected: undefined as string | undefined, busy: Promise.resolve() };
    sock.write(`* OK [CAPABILITY ${this.caps}] hostile ready\r\n`);
    let buf = Buffer.alloc(0);
    let parts: string[] = [];
    let literals: Buffer[] = [];
    let want = 0;
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (want > 0) {
          if (buf.length < want) return;
          literals.push(buf.subarray(0, want));
          parts.push(`\u0000${literals.length - 1}\u0001`);
          buf = buf.subarray(want);
          want = 0;
          continue;
        }
        const eol = buf.indexOf('\r\n');
        if (eol < 0) return;
        const line = buf.subarray(0, eol).toString('latin1');
        buf = buf.subarray(eol + 2);
        const lit = /\{(\d+)(\+?)\}$/.exec(line);
        if (lit) {
          parts.push(line.slice(0, lit.index));
          want = Number(lit[1]);
          if (!lit[2]) sock.write('+ go ahead\r\n');
          if (want === 0) {
            literals.push(Buffer.alloc(0));
            parts.push(`\u0000${literals.length - 1}\u0001`);
          }
          continue;
        }
        parts.push(line);
        const tokens = tokenize(parts.join(''), literals);
        parts = [];
        literals = [];
        // One command at a time, as the client expects its answers in order.
        conn.busy = conn.busy.then(() => this.command(sock, conn, tokens)).catch(() => void sock.destroy());
      }
    });
  }

  private async command(sock: Socket, conn: { selected: string | undefined }, tokens: Token[]): Promise<void> {
    const tag = text(tokens[0]);
    let name = text(tokens[1]).toUpperCase();
    let args = tokens.slice(2);
    if (name === 'UID') {
      name = `UID ${text(args[0]).toUpperCase()}`;
      args = args.slice(1);
    }
    this.seen.push(name);
    const ok = (msg = 'done') => sock.write(`${tag} OK ${msg}\r\n`);
    const box = (n: string) => (n.toUpperCase() === 'INBOX' ? 'INBOX' : n);
    switch (name) {
      case 'CAPABILITY':
        sock.write(`* CAPABILITY ${this.caps}\r\n`);
        return void ok();
      case 'LOGIN':
        return void ok(`[CAPABILITY ${this.caps}] logged in`);
      case 'NOOP':
        return void ok();
      case 'LOGOUT':
        sock.write('* BYE bye\r\n');
        ok();
        return void sock.end();
      case 'LIST':
      case 'LSUB': {
        const pattern = text(args[1]);
        if (pattern === '') sock.write(`* ${name} (\\Noselect) "/" ""\r\n`);
        for (const m of this.mailboxes.keys()) {
          if (name === 'LSUB' && !this.subscribed.has(m)) continue;
          if (pattern === '*' || pattern === '%' || box(pattern) === m) sock.write(`* ${name} () "/" "${m}"\r\n`);
        }
        return void ok();
      }
      case 'SUBSCRIBE':
        this.subscribed.add(box(text(args[0])));
        return void ok();
      case 'UNSUBSCRIBE':
        this.subscribed.delete(box(text(args[0])));
        return void ok();
      case 'STATUS': {
        const m = box(text(args[0]));
        const list = this.mailboxes.get(m);
        if (!list) return void sock.write(`${tag} NO [NONEXISTENT] no such mailbox\r\n`);
        sock.write(`* STATUS "${m}" (MESSAGES ${list.length} UIDNEXT ${this.uidNext.get(m)} UIDVALIDITY ${UIDVALIDITY})\r\n`);
        return void ok();
      }
      case 'SELECT':
      case 'EXAMINE': {
        const m = box(text(args[0]));
        const list = this.mailboxes.get(m);
        if (!list) return void sock.write(`${tag} NO [NONEXISTENT] no such mailbox\r\n`);
        conn.selected = m;
        sock.write(`* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] ok\r\n`);
        sock.write(`* ${list.length} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY ${UIDVALIDITY}] ok\r\n* OK [UIDNEXT ${this.uidNext.get(m)}] ok\r\n`);
        return void ok(`[${name === 'SELECT' ? 'READ-WRITE' : 'READ-ONLY'}] selected`);
      }
      case 'UID SEARCH': {
        const list = this.mailboxes.get(conn.selected ?? '') ?? [];
        sock.write(`* SEARCH ${list.filter((m) => matches(m, args, list.at(-1)?.uid ?? 0)).map((m) => m.uid).join(' ')}\r\n`);
        return void ok();
      }
      case 'UID FETCH':
        return this.fetch(sock, tag, conn.selected, text(args[0]), args[1]);
      case 'APPEND':
        return this.append(sock, tag, box(text(args[0])), args.slice(1));
      default:
        sock.write(`${tag} BAD unknown command\r\n`);
    }
  }

  private async fetch(sock: Socket, tag: string, selected: string | undefined, set: string, itemsToken: Token | undefined): Promise<void> {
    const items = (Array.isArray(itemsToken) ? itemsToken : [itemsToken]).map((t) => text(t as Token).toUpperCase());
    if (items.includes('X-GUID') && !this.script.xGuid) return void sock.write(`${tag} BAD unknown fetch item\r\n`);
    const list = this.mailboxes.get(selected ?? '') ?? [];
    const max = list.at(-1)?.uid ?? 0;
    const bodies = items.includes('BODY.PEEK[]') || items.includes('BODY[]');
    if (bodies) this.bodyFetches++;
    if (bodies && this.script.silentBodies) return; // never answered
    const out: Buffer[] = [];
    for (const [i, m] of list.entries()) {
      if (!inSet(set, m.uid, max)) continue;
      const parts: Buffer[] = [Buffer.from(`* ${i + 1} FETCH (UID ${m.uid}`)];
      for (const item of items) {
        if (item === 'FLAGS') parts.push(Buffer.from(` FLAGS (${m.flags.join(' ')})`));
        else if (item === 'X-GUID') parts.push(Buffer.from(` X-GUID "${this.script.xGuid!(m).replace(/["\\]/g, '\\$&')}"`));
        else if (item === 'RFC822.SIZE') parts.push(Buffer.from(` RFC822.SIZE ${this.script.announcedSize?.(m) ?? m.body.length}`));
        else if (item === 'INTERNALDATE') parts.push(Buffer.from(` INTERNALDATE "${formatInternalDate(m.internalDate)}"`));
        else if (item.startsWith('BODY.PEEK[HEADER.FIELDS')) {
          const end = m.body.indexOf('\r\n\r\n');
          const header = m.body.subarray(0, end < 0 ? m.body.length : end + 2).toString('latin1');
          const wanted = header.split(/\r\n(?![ \t])/).filter((l) => /^(date|message-id):/i.test(l)).map((l) => `${this.script.mailutils ? upperName(l) : l}\r\n`).join('') + '\r\n';
          parts.push(Buffer.from(` BODY[HEADER.FIELDS (DATE MESSAGE-ID)] {${wanted.length}}\r\n${wanted}`, 'latin1'));
        } else if (item === 'BODY.PEEK[]' || item === 'BODY[]') {
          const answer = this.script.body ? this.script.body(m) : m.body;
          if (answer === null) parts.push(Buffer.from(' BODY[] NIL'));
          else if (Buffer.isBuffer(answer)) parts.push(Buffer.from(` BODY[] {${answer.length}}\r\n`), answer);
          else parts.push(Buffer.from(` BODY[] {${answer.bytes}}\r\n`), filler(answer.bytes));
        }
      }
      parts.push(Buffer.from(')\r\n'));
      if (bodies && this.script.trickleMs) out.push(...parts);
      else for (const p of parts) if (!sock.write(p)) await new Promise((r) => sock.once('drain', r));
      if (sock.destroyed) return;
    }
    if (bodies && this.script.trickleMs) {
      const all = Buffer.concat(out);
      for (let i = 0; i < all.length && !sock.destroyed; i++) {
        sock.write(all.subarray(i, i + 1));
        await new Promise((r) => setTimeout(r, this.script.trickleMs));
      }
    }
    sock.write(`${tag} OK fetched\r\n`);
  }

  private async append(sock: Socket, tag: string, mailbox: string, rest: Token[]): Promise<void> {
    const list = this.mailboxes.get(mailbox);
    if (!list) return void sock.write(`${tag} NO [TRYCREATE] no such mailbox\r\n`);
    const items: { flags: string[]; date: number; body: Buffer }[] = [];
    for (let i = 0; i < rest.length; ) {
      const flags = Array.isArray(rest[i]) ? (rest[i++] as Token[]).map(text) : [];
      const date = typeof rest[i] === 'string' ? parseDate(rest[i++] as string) : Date.now();
      const body = rest[i++];
      if (!Buffer.isBuffer(body)) return void sock.write(`${tag} BAD expected a literal\r\n`);
      items.push({ flags, date, body });
    }
    const refused = items.findIndex((it) => Number.isNaN(it.date) || this.script.refuseDate?.(it.date) !== undefined);
    const store = (it: (typeof items)[number]) => {
      const uid = this.add(mailbox, this.script.mailutils ? rewriteHeader(it.body) : it.body, it.date);
      list.at(-1)!.flags = it.flags;
      return uid;
    };
    if (refused >= 0) {
      if (this.script.partialMultiappend) items.slice(0, refused).forEach(store);
      return void sock.write(`${tag} ${this.script.refuseDate?.(items[refused]!.date) ?? 'BAD'} Invalid date-time\r\n`);
    }
    const uids = items.map(store);
    if (this.script.mailutils) sock.write(`* ${list.length} EXISTS\r\n${tag} OK APPEND Completed\r\n`);
    else sock.write(`${tag} OK [APPENDUID ${UIDVALIDITY} ${uids.join(',')}] appended\r\n`);
  }
}

/** `UID SEARCH` criteria: ALL, a UID set after `UID`, `HEADER name text` (substring, any case); all must hold. */
function matches(m: HostileMessage, args: Token[], max: number): boolean {
  for (let i = 0; i < args.length; i++) {
    const key = text(args[i]).toUpperCase();
    if (key === 'ALL' || key === 'CHARSET') {
      if (key === 'CHARSET') i++;
      continue;
    }
    if (key === 'UID') {
      if (!inSet(text(args[++i]), m.uid, max)) return false;
    } else if (key === 'HEADER') {
      const field = text(args[++i]).toLowerCase();
      const needle = text(args[++i]).toLowerCase();
      const end = m.body.indexOf('\r\n\r\n');
      const lines = m.body.subarray(0, end < 0 ? m.body.length : end).toString('latin1').split(/\r\n(?![ \t])/);
      if (!lines.some((l) => l.toLowerCase().startsWith(`${field}:`) && l.slice(field.length + 1).toLowerCase().includes(needle))) return false;
    } else if (/^[\d*]/.test(key)) {
      if (!inSet(key, m.uid, max)) return false;
    } else return false;
  }
  return true;
}

function upperName(line: string): string {
  const colon = line.indexOf(':');
  return colon < 0 ? line : line.slice(0, colon).toUpperCase() + line.slice(colon);
}

/** The header as mailutils stores it: one line per field, `Name: value`, whitespace runs one space. */
function rewriteHeader(body: Buffer): Buffer {
  const s = body.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  if (end < 0) return body;
  const fields = s.slice(0, end).split(/\r\n(?![ \t])/).map((f) => {
    const colon = f.indexOf(':');
    if (colon < 0) return f;
    const value = f.slice(colon + 1).replace(/\r\n/g, '').replace(/[ \t]+/g, ' ').trim();
    return `${f.slice(0, colon)}: ${value}`;
  });
  return Buffer.from(`${fields.join('\r\n')}${s.slice(end)}`, 'latin1');
}

let fill: Buffer | undefined;
/** `n` bytes of message-like lines; one buffer shared by every answer that needs it. */
function filler(n: number): Buffer {
  if (!fill || fill.length < n) fill = Buffer.alloc(Math.max(n, 1 << 20), 'filler line of a body far larger than announced\r\n');
  return fill.subarray(0, n);
}
