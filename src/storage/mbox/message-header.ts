/**
 * Reading one stored message header (the bytes between its From line and the empty line):
 * the metadata it carries, and the header as it is served, that is without the metadata
 * lines (as Dovecot hides them) and with escaped lines restored.
 */
import { DOVECOT_HEADERS, ESCAPE_PREFIX, fieldName, fieldValue, OWN_HEADERS, parseImapBase, parseKeywords, type ImapBase } from './mbox-headers.js';

export interface HeaderInfo {
  /** The header as served to readers. */
  served: Buffer;
  uid?: number;
  status: string;
  xStatus: string;
  keywords: string[];
  contentLength?: number;
  imapBase?: ImapBase;
  /** X-IMAP: only the pseudo message carries it. */
  imap?: ImapBase;
  guid?: string;
  shape?: string;
  pseudo: boolean;
  /** Offset (in the raw header) of the first Dovecot metadata line, or the header's length. */
  metaStart: number;
  /** Offset and length of the X-IMAPbase line (with its line end), when there is one. */
  imapBaseLine?: { offset: number; length: number };
  /**
   * The lines from metaStart on that are not Dovecot metadata, in order: what a rewrite of the
   * metadata lines keeps. Writers analyze the header again when they need it; scans keep none.
   */
  keptAfterMeta: string[];
}

const PSEUDO_SUBJECT = "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA";

/** Splits text into lines that keep their line ends. */
function lines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) {
      if (start < text.length) out.push(text.slice(start));
      return out;
    }
    out.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
}

export function analyzeHeader(raw: Uint8Array, first: boolean): HeaderInfo {
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
  const info: HeaderInfo = {
    served: Buffer.alloc(0),
    status: '',
    xStatus: '',
    keywords: [],
    pseudo: false,
    metaStart: text.length,
    keptAfterMeta: [],
  };
  const served: string[] = [];
  let hiding = false;
  let subject = '';
  let offset = 0;
  for (const line of lines(text)) {
    const lineOffset = offset;
    offset += line.length;
    if (line.startsWith(ESCAPE_PREFIX)) {
      hiding = false;
      served.push(line.slice(ESCAPE_PREFIX.length));
      if (lineOffset >= info.metaStart) info.keptAfterMeta.push(line);
      continue;
    }
    const name = fieldName(line);
    if (name === undefined && (line[0] === ' ' || line[0] === '\t')) {
      if (!hiding) served.push(line);
      if (lineOffset >= info.metaStart && !hiding) info.keptAfterMeta.push(line);
      continue;
    }
    hiding = name !== undefined && (DOVECOT_HEADERS.has(name) || OWN_HEADERS.has(name));
    if (!hiding) {
      served.push(line);
      if (name === 'subject') subject = fieldValue(line);
      if (lineOffset >= info.metaStart) info.keptAfterMeta.push(line);
      continue;
    }
    const value = fieldValue(line);
    if (DOVECOT_HEADERS.has(name!)) {
      if (info.metaStart === text.length) info.metaStart = lineOffset;
    } else if (lineOffset >= info.metaStart) {
      info.keptAfterMeta.push(line);
    }
    switch (name) {
      case 'x-uid':
        if (/^\d+$/.test(value) && Number(value) > 0 && Number(value) <= 0xffffffff) info.uid = Number(value);
        break;
      case 'status':
        info.status = value;
        break;
      case 'x-status':
        info.xStatus = value;
        break;
      case 'x-keywords':
        info.keywords = [...new Set([...info.keywords, ...parseKeywords(value)])];
        break;
      case 'content-length':
        if (/^\d+$/.test(value)) info.contentLength = Number(value);
        break;
      case 'x-imapbase':
        info.imapBase = parseImapBase(value);
        info.imapBaseLine = { offset: lineOffset, length: line.length };
        break;
      case 'x-imap':
        info.imap = parseImapBase(value);
        break;
      case 'x-mailferry-guid':
        if (/^[\x21-\x7e]{1,200}$/.test(value)) info.guid = value;
        break;
      case 'x-mailferry-shape':
        info.shape = value;
        break;
    }
  }
  info.served = Buffer.from(served.join(''), 'latin1');
  info.pseudo = first && (info.imap !== undefined || subject.includes(PSEUDO_SUBJECT));
  return info;
}

/** A message header as it must be stored: lines that would be misread are escaped. */
export function escapeHeader(header: Uint8Array, needsEscape: (line: string) => boolean): Buffer {
  const text = Buffer.from(header.buffer, header.byteOffset, header.byteLength).toString('latin1');
  let changed = false;
  const out = lines(text).map((line) => {
    if (!needsEscape(line)) return line;
    changed = true;
    return ESCAPE_PREFIX + line;
  });
  return changed ? Buffer.from(out.join(''), 'latin1') : Buffer.from(header);
}
