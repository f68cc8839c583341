/**
 * Output in doveadm's "flow" shape (`key=value` pairs, values with spaces quoted) or JSON.
 */
/** Values with spaces or quotes are quoted; backslashes stay as they are so `\Seen` reads as itself. */
export function flowValue(value: string | number): string {
  const s = String(value);
  return /[\s"]/.test(s) || s === '' ? `"${s.replace(/"/g, '\\"')}"` : s;
}

export function flowLine(fields: [string, string | number][]): string {
  return fields.map(([k, v]) => `${k}=${flowValue(v)}`).join(' ');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLines(lines: string[]): void {
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
}
