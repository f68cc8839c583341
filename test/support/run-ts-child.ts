/**
 * Runs one of the interruption tests' child processes (a TypeScript script under tsx) and says
 * how it ended: killed (at a failpoint, or by `killAfterMs`) or exited 0. A child that exits
 * with an error rejects, with its stderr, since no test expects that.
 */
import { spawn } from 'node:child_process';

export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** `env` is added to this process's environment; an undefined value removes the variable. */
export function runTsChild(script: string, args: readonly string[], opts: { env?: Record<string, string | undefined>; killAfterMs?: number } = {}): Promise<ChildEnd> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    if (opts.killAfterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code !== 0 && code !== null) reject(new Error(`${script} failed (exit ${code}): ${stderr}`));
      else resolve({ code, signal });
    });
  });
}
