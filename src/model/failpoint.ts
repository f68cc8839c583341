/**
 * Crash points for the interruption tests: `MAILFERRY_FAILPOINT=name[:n]` makes the process
 * SIGKILL itself the n-th time (default first) execution passes `failpoint(name)`. Unset, a
 * failpoint costs one property lookup.
 */
const spec = process.env.MAILFERRY_FAILPOINT;
const [target, countText] = spec ? spec.split(':') : [];
let remaining = countText ? Number(countText) : 1;

export function failpoint(name: string): void {
  if (target !== name) return;
  if (--remaining > 0) return;
  process.kill(process.pid, 'SIGKILL');
}
