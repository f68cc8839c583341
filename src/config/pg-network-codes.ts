/**
 * What the errno of a failed PostgreSQL connection means, in words for a one-line error: the
 * sql userdb and the shared replication queue both say it, and both take these as "unreachable,
 * try again later" (75).
 */
export const PG_NETWORK_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EHOSTDOWN: 'host down',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed for now',
  ENOENT: 'no server socket there',
  EPIPE: 'connection closed',
};
