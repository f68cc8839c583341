/**
 * mbox `From ` separator lines: `From <envelope sender> <asctime date>[ <zone>]`.
 *
 * A line starting `From ` only separates messages when a valid date follows, as in Dovecot
 * (istream-raw-mbox.c) and RFC 4155: a body line such as "From here on..." is never a separator.
 * Dates are written and read in local time, as Dovecot, UW-IMAP and Postfix do.
 */
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * The asctime date somewhere after the sender: weekday, month, day, time, then the year either
 * right after the time or after a zone (`Mon Jan  1 10:00:00 2024`, `... 10:00 +0100 2024`,
 * `... 10:00:00 2024 +0100`). The sender itself may hold spaces (quoted local parts).
 */
const DATE_RE =
  /(?:^|\s)(Sun|Mon|Tue|Wed|Thu|Fri|Sat)\s+(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+(?:([A-Za-z]{1,5}|[+-]\d{4})\s+)?(\d{4})(?:\s+([+-]\d{4}|[A-Za-z]{1,5}))?\s*$/;

/** True when `line` (without its line end) starts with `From `. */
export function startsWithFrom(buf: Uint8Array, offset = 0): boolean {
  return (
    buf[offset] === 0x46 && buf[offset + 1] === 0x72 && buf[offset + 2] === 0x6f && buf[offset + 3] === 0x6d && buf[offset + 4] === 0x20
  );
}

/**
 * The received date (ms since the epoch) of a separator line, or undefined when the line is not
 * a separator. `line` excludes the line end (a trailing CR is tolerated).
 */
export function parseFromLine(line: Uint8Array): number | undefined {
  if (!startsWithFrom(line) || line.length > 1000) return undefined;
  let text = Buffer.from(line.buffer, line.byteOffset, line.byteLength).toString('latin1');
  if (text.endsWith('\r')) text = text.slice(0, -1);
  const m = DATE_RE.exec(text.slice(4));
  if (!m) return undefined;
  const [, , mon, day, hh, mm, ss, , year, zoneAfter] = m;
  const zone = /^[+-]\d{4}$/.test(m[7] ?? '') ? m[7] : /^[+-]\d{4}$/.test(zoneAfter ?? '') ? zoneAfter : undefined;
  const month = MONTHS.indexOf(mon!);
  const d = Number(day);
  const h = Number(hh);
  const min = Number(mm);
  const s = Number(ss ?? 0);
  if (d < 1 || d > 31 || h > 23 || min > 59 || s > 60) return undefined;
  if (zone) {
    const sign = zone[0] === '-' ? -1 : 1;
    const offsetMin = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
    return Date.UTC(Number(year), month, d, h, min, s) - offsetMin * 60_000;
  }
  return new Date(Number(year), month, d, h, min, s).getTime();
}

/** A separator line (with LF) for a message received at `date` (ms), in local time as Dovecot writes it. */
export function formatFromLine(sender: string, date: number): string {
  const t = new Date(Math.floor(date / 1000) * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  const day = String(t.getDate()).padStart(2, ' ');
  const safeSender = sender.replace(/\s/g, '_') || 'MAILER-DAEMON';
  return `From ${safeSender}  ${DAYS[t.getDay()]} ${MONTHS[t.getMonth()]} ${day} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())} ${t.getFullYear()}\n`;
}
