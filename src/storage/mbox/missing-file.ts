/** Whether an error from opening a file says it is not there (raw errno, or a store error wrapping one). */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? (err as { cause?: NodeJS.ErrnoException }).cause?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
