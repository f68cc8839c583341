/**
 * Certificates for TLS tests, made with Debian's openssl in a directory of the test's: a CA, a
 * server certificate for 127.0.0.1, ::1 and localhost signed by it, a client certificate signed
 * by it, and a second CA (one no client trusts) with its own server and client certificates for
 * the same names. P-256 keys: quick to make, and every TLS 1.2 and 1.3 stack takes them.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Another CA, trusted by nobody, and what it signed. */
  rogueCa: string;
  rogueServerCert: string;
  rogueServerKey: string;
  rogueClientCert: string;
  rogueClientKey: string;
}

function openssl(args: string[], dir: string): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string, cn: string): void {
  openssl(['req', '-x509', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '3', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
}

function sign(dir: string, ca: string, name: string, cn: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(['req', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
}

const SERVER_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n';
const CLIENT_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n';

export function makeCerts(dir: string): CertFiles {
  makeCa(dir, 'ca', 'mailferry test CA');
  sign(dir, 'ca', 'server', 'localhost', SERVER_EXT);
  sign(dir, 'ca', 'client', 'backup-host.example', CLIENT_EXT);
  makeCa(dir, 'rogue-ca', 'someone else');
  sign(dir, 'rogue-ca', 'rogue-server', 'localhost', SERVER_EXT);
  sign(dir, 'rogue-ca', 'rogue-client', 'intruder.example', CLIENT_EXT);
  const f = (n: string) => join(dir, n);
  return {
    dir,
    ca: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
    rogueCa: f('rogue-ca.crt'),
    rogueServerCert: f('rogue-server.crt'),
    rogueServerKey: f('rogue-server.key'),
    rogueClientCert: f('rogue-client.crt'),
    rogueClientKey: f('rogue-client.key'),
  };
}
