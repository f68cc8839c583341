/**
 * Dovecot's `subscriptions` file (lib-storage/list/subscription-file.c).
 *
 * Names are stored as storage names, relative to the namespace: in modified
 * UTF-7 by default, in UTF-8 only when the mailbox list uses the UTF-8
 * option. This module leaves them as they are; callers convert.
 *
 * Version 1 has one name per line with the list's hierarchy separator inside.
 * Version 2 (written by Dovecot 2.3+) starts with "V\t2\n\n" and puts the
 * hierarchy parts on one line joined by TAB, each part tab-escaped, so a
 * separator character inside a part survives.
 */
const V2_HEADER = 'V\t2\n\n';

// Dovecot's tab escaping: \001 is the escape byte, followed by a letter.
const ESCAPES: Record<string, string> = { '\x01': '\x011', '\t': '\x01t', '\r': '\x01r', '\n': '\x01n', '\0': '\x010' };
const UNESCAPES: Record<string, string> = { '0': '\0', '1': '\x01', t: '\t', r: '\r', n: '\n' };

function tabEscape(s: string): string {
  return s.replace(/[\x01\t\r\n\0]/g, (c) => ESCAPES[c]!);
}

function tabUnescape(s: string): string {
  // Unknown escapes yield the letter itself and a trailing lone \001 is dropped, as in Dovecot.
  return s.replace(/\x01([\s\S]?)/g, (_m, c: string) => UNESCAPES[c] ?? c);
}

/**
 * Returns each subscription as hierarchy parts. `file` is accepted for
 * symmetry with the other parsers; Dovecot reads any content without error,
 * so nothing here can fail.
 */
export function parseSubscriptions(text: string, separator: string, file: string): string[][] {
  void file;
  const v2 = text.startsWith(V2_HEADER);
  const body = v2 ? text.slice(V2_HEADER.length) : text;
  const lines = body.split('\n');
  // Dovecot reads subscriptions with partial last lines allowed, so a missing final newline is fine.
  if (lines[lines.length - 1] === '') lines.pop();
  const out: string[][] = [];
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    if (line === '') continue;
    const parts = v2 ? line.split('\t').map(tabUnescape) : separator === '' ? [line] : line.split(separator);
    // A trailing separator comes from old Dovecot versions and other software; Dovecot drops it.
    if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
    out.push(parts);
  }
  return out;
}

/** Writes version 2 exactly as Dovecot does: header, then one tab-joined line per name. */
export function formatSubscriptions(names: readonly (readonly string[])[]): string {
  let out = V2_HEADER;
  for (const parts of names) out += parts.map(tabEscape).join('\t') + '\n';
  return out;
}
