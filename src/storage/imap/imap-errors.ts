/**
 * imapflow and socket errors as MailferryErrors (exit status by kind). Whether an error is
 * worth a reconnect is decided here too: a dropped or stalled connection is, a refusal by the
 * server is not.
 */
import { MailferryError } from '../../model/errors.js';

interface ImapFlowLikeError {
  code?: string;
  authenticationFailed?: boolean;
  serverResponseCode?: string;
  responseText?: string;
  responseStatus?: string;
  message?: string;
}

const CONNECTION_CODES = new Set([
  'NoConnection', 'EConnectionClosed', 'StateLogout', 'ClosedAfterConnectText', 'ClosedAfterConnectTLS',
  'CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'UPGRADE_TIMEOUT', 'ETIMEOUT',
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'Z_BUF_ERROR',
]);

/** TLS failures a retry cannot cure: the certificate or the protocol spoken on that port. */
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|HOSTNAME_MISMATCH)/;

export function isConnectionError(err: unknown): boolean {
  const e = err as ImapFlowLikeError;
  if (err instanceof MailferryError) return false;
  return !!e?.code && CONNECTION_CODES.has(e.code);
}

/** Server says "try later": NO [LIMIT], [UNAVAILABLE], [INUSE], or imapflow's ETHROTTLE. */
export function isThrottle(err: unknown): boolean {
  const e = err as ImapFlowLikeError;
  if (e?.code === 'ETHROTTLE') return true;
  return ['LIMIT', 'UNAVAILABLE', 'INUSE'].includes((e?.serverResponseCode ?? '').toUpperCase());
}

export function serverText(err: unknown): string {
  const e = err as ImapFlowLikeError;
  return (e?.responseText || e?.message || String(err)).replace(/\s+/g, ' ').trim();
}

/** `what` names the account and, where there is one, the mailbox or message. */
export function imapError(err: unknown, what: string): MailferryError {
  if (err instanceof MailferryError) return err;
  const e = err as ImapFlowLikeError;
  const code = e?.code ?? '';
  if (e?.authenticationFailed) return new MailferryError('permission', `${what}: authentication failed`, { cause: err });
  if (TLS_CODE.test(code)) {
    const reason = (err as { reason?: string }).reason ?? e.message?.split('\n')[0] ?? '';
    return new MailferryError('config', `${what}: TLS failed (${code}${reason ? `: ${reason}` : ''})`, { cause: err });
  }
  if (code === 'ECONNREFUSED') return new MailferryError('tempfail', `${what}: connection refused`, { cause: err });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new MailferryError('tempfail', `${what}: host not found`, { cause: err });
  if (isConnectionError(err)) return new MailferryError('tempfail', `${what}: connection lost (${e.message ?? code})`, { cause: err });
  if (isThrottle(err)) return new MailferryError('tempfail', `${what}: server busy (${serverText(err)})`, { cause: err });
  const rc = (e?.serverResponseCode ?? '').toUpperCase();
  if (rc === 'NONEXISTENT' || code === 'NotFound') return new MailferryError('notfound', `${what}: does not exist`, { cause: err });
  if (rc === 'NOPERM' || rc === 'AUTHORIZATIONFAILED') return new MailferryError('permission', `${what}: permission denied (${serverText(err)})`, { cause: err });
  if (rc === 'ALREADYEXISTS') return new MailferryError('exists', `${what}: already exists`, { cause: err });
  if (rc === 'OVERQUOTA') return new MailferryError('tempfail', `${what}: over quota (${serverText(err)})`, { cause: err });
  if (e?.responseStatus === 'NO' || e?.responseStatus === 'BAD') {
    return new MailferryError('data', `${what}: server refused (${serverText(err)})`, { cause: err });
  }
  return new MailferryError('tempfail', `${what}: ${e?.message ?? String(err)}`, { cause: err });
}
