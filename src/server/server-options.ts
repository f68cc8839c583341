/**
 * `mailferry server`'s command line and settings -> its configuration, pure: listen addresses,
 * TLS files (options win over server_tls_*), the secret file, and the plaintext rule: plaintext
 * is served only with --allow-plaintext, and only on loopback addresses unless --force-plaintext
 * says the network in between is trusted.
 */
import type { Settings } from '../config/settings.js';
import { usageError } from '../model/errors.js';
import type { ListenAddress, ServerConfig } from './mail-server.js';
import { isLoopback } from './peer-address.js';

export interface ServerCliOptions {
  listen?: string[];
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
  secretFile?: string;
  allowPlaintext?: boolean;
  forcePlaintext?: boolean;
}

/** HOST:PORT, [IPV6]:PORT, HOST (the default port), :PORT or *:PORT (every address). */
export function parseListen(value: string, defaultPort: number): ListenAddress {
  const bad = (why: string) => usageError(`invalid --listen '${value}': ${why} (expected HOST:PORT, [IPV6]:PORT, HOST, or *:PORT)`);
  let host: string;
  let portText: string | undefined;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) throw bad("'[' without ']'");
    host = value.slice(1, close);
    const after = value.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw bad(`unexpected '${after}'`);
    if (after !== '') portText = after.slice(1);
    if (!/^[0-9A-Fa-f:.]+$/.test(host)) throw bad(`'${host}' is not an IPv6 address`);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon >= 0 && value.indexOf(':') !== colon) throw bad('an IPv6 address goes in [ ]');
    host = colon < 0 ? value : value.slice(0, colon);
    if (colon >= 0) portText = value.slice(colon + 1);
    if (host === '') host = '*';
    if (host !== '*' && !/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(host)) throw bad(`'${host}' is not a host name or address`);
  }
  let port = defaultPort;
  if (portText !== undefined) {
    port = Number(portText);
    // 0 takes any free port (the log says which), for tests.
    if (!/^\d{1,5}$/.test(portText) || port > 65535) throw bad(`'${portText}' is not a port number`);
  }
  return { host, port };
}

export function serverConfigFrom(opts: ServerCliOptions, template: string | undefined, settings: Settings): ServerConfig {
  const listen = (opts.listen?.length ? opts.listen : ['*']).map((l) => parseListen(l, settings.server_port));
  const cert = opts.tlsCert ?? settings.server_tls_cert;
  const key = opts.tlsKey ?? settings.server_tls_key;
  const clientCa = opts.clientCa ?? settings.server_client_ca;
  if ((cert === undefined) !== (key === undefined)) throw usageError('--tls-cert and --tls-key go together (or server_tls_cert and server_tls_key)');
  if (cert === undefined && clientCa !== undefined) throw usageError('--client-ca needs TLS: give --tls-cert and --tls-key too');
  const allowPlaintext = Boolean(opts.allowPlaintext || opts.forcePlaintext);
  if (cert === undefined && !allowPlaintext) {
    throw usageError('mailferry server needs a certificate (--tls-cert FILE --tls-key FILE, or server_tls_cert and server_tls_key), or --allow-plaintext for tcp: clients on loopback');
  }
  if (allowPlaintext && !opts.forcePlaintext) {
    const open = listen.filter((l) => !isLoopback(l.host));
    if (open.length > 0) {
      throw usageError(`--allow-plaintext serves only loopback addresses, and ${open.map((l) => (l.host === '*' ? 'every address' : l.host)).join(', ')} is not one: a secret-authenticated plaintext session can still be read on the way; use TLS, or --force-plaintext when the network in between is trusted`);
    }
  }
  if (template !== undefined && template.trim() === '') throw usageError('LOCATION-TEMPLATE is empty');
  return {
    listen,
    ...(cert !== undefined ? { tls: { cert, key: key!, ...(clientCa !== undefined ? { clientCa } : {}) } } : {}),
    ...((opts.secretFile ?? settings.server_secret_file) !== undefined ? { secretFile: opts.secretFile ?? settings.server_secret_file } : {}),
    allowPlaintext,
    ...(template !== undefined ? { template } : {}),
    settings,
  };
}
