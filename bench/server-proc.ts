/**
 * What a long-running server spent on one client run, read from /proc: the CPU of its whole
 * process tree (the master and every child, the children that came and went included, through
 * the master's cutime/cstime once it has reaped them), and the bytes its loopback carried.
 */
import { readFileSync } from 'node:fs';
import { sleep } from './measure.js';

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ, 100 on every Linux port). */
const HZ = 100;

interface ProcTimes { own: number; children: number }

function stat(pid: number): ProcTimes | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" closing the command name: state(3) ... utime(14) stime(15) cutime(16) cstime(17).
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { own: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined;
  }
}

function children(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean);
  } catch { /* gone */ }
  for (const t of tasks) out.push(Number(t));
  return out;
}

/** The pid and every live descendant. */
export function processTree(pid: number): number[] {
  const all: number[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    all.push(p);
    todo.push(...children(p));
  }
  return all;
}

/** CPU seconds the tree has used so far: every live member's own time and what each has reaped. */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const t = stat(p);
    if (t) ticks += t.own + t.children;
  }
  return ticks / HZ;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * Waits (up to `ms`) until the tree holds no process that was not in `before`, but for an idle
 * spare: a session still closing its store after the client exited is part of the run, and a
 * child's time reaches its parent's cutime only once it is reaped. mailferry's server starts
 * the next session's process as a connection ends; it takes the title `mailferry spare` once
 * its modules are loaded, and from then on uses no CPU until a client comes, so that start-up,
 * a cost of every session, is counted in the run that caused it.
 */
export async function settleTree(pid: number, before: readonly number[], ms = 5000): Promise<void> {
  const known = new Set(before);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && processTree(pid).some((p) => !known.has(p) && comm(p) !== 'mailferry spare')) await sleep(20);
}

/**
 * Bytes the loopback interface has sent (each byte crossing it once, headers included): the
 * bytes of a run when nothing else shares the network namespace (see server-cases.ts).
 */
export function loopbackBytes(): number | undefined {
  try {
    const line = readFileSync('/proc/net/dev', 'utf8').split('\n').find((l) => /^\s*lo:/.test(l));
    // "lo: rx_bytes rx_packets ... (8 rx fields) tx_bytes ..."
    const f = line?.split(':')[1]?.trim().split(/\s+/).map(Number);
    return f && Number.isFinite(f[8]) ? f[8] : undefined;
  } catch {
    return undefined;
  }
}
