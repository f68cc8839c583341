/** IMAP INTERNALDATE (`24-Nov-2026 19:13:09 +0000`, the day possibly space-padded). */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** Milliseconds since the epoch; 0 for what is not a date (it cannot fail a whole FETCH). */
export function parseInternalDate(s: string): number {
  const m = /^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s);
  const month = m ? MONTHS.indexOf(m[2]!.toLowerCase()) : -1;
  if (!m || month < 0) {
    const t = Date.parse(s);
    return Number.isFinite(t) ? t : 0;
  }
  const utc = Date.UTC(+m[3]!, month, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  const offset = (+m[8]! * 60 + +m[9]!) * 60_000 * (m[7] === '-' ? -1 : 1);
  return utc - offset;
}

/** The first and last instants the syntax (a four-digit year) can say. */
const EARLIEST = Date.UTC(1, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59);

export function formatInternalDate(ms: number): string {
  const d = new Date(Math.min(LATEST, Math.max(EARLIEST, Number.isFinite(ms) ? ms : 0)));
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const mon = MONTHS[d.getUTCMonth()]!;
  return `${p(d.getUTCDate())}-${mon[0]!.toUpperCase()}${mon.slice(1)}-${p(d.getUTCFullYear(), 4)} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
