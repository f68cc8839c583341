/**
 * Typed errors. Each carries the exit status the CLI reports for it (DESIGN.md):
 * 64 usage, 65 bad data, 67 unknown user, 75 temporary failure, 77 permission, 78 configuration.
 */
export type ErrorKind = 'usage' | 'data' | 'notfound' | 'exists' | 'tempfail' | 'permission' | 'config' | 'nouser';

const EXIT_CODES: Record<ErrorKind, number> = {
  usage: 64,
  data: 65,
  notfound: 65,
  exists: 65,
  nouser: 67,
  tempfail: 75,
  permission: 77,
  config: 78,
};

export class MailferryError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MailferryError';
    this.kind = kind;
  }
  get exitCode(): number {
    return EXIT_CODES[this.kind];
  }
}

export const usageError = (msg: string) => new MailferryError('usage', msg);
export const dataError = (msg: string, cause?: unknown) => new MailferryError('data', msg, { cause });
export const notFoundError = (msg: string) => new MailferryError('notfound', msg);
export const existsError = (msg: string) => new MailferryError('exists', msg);
export const tempError = (msg: string, cause?: unknown) => new MailferryError('tempfail', msg, { cause });
export const configError = (msg: string) => new MailferryError('config', msg);

/** Turns an fs error into a MailferryError naming `what`, keeping errno semantics for the exit status. */
export function fsError(err: unknown, what: string): MailferryError {
  if (err instanceof MailferryError) return err;
  const e = err as NodeJS.ErrnoException;
  const reason = e?.code ? `${e.code}` : String(err);
  switch (e?.code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new MailferryError('notfound', `${what}: no such file or directory`, { cause: err });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new MailferryError('permission', `${what}: permission denied`, { cause: err });
    case 'EEXIST':
      return new MailferryError('exists', `${what}: already exists`, { cause: err });
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EIO':
    case 'EAGAIN':
    case 'EMFILE':
    case 'ENFILE':
      return new MailferryError('tempfail', `${what}: ${reason}`, { cause: err });
    default:
      return new MailferryError('tempfail', `${what}: ${e?.message ?? reason}`, { cause: err });
  }
}

export function exitCodeOf(err: unknown): number {
  return err instanceof MailferryError ? err.exitCode : 75;
}
