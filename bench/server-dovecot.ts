/**
 * Dovecot's doveadm server over TLS on loopback, as a site runs it for `doveadm sync -A tcps:`:
 * a private Dovecot (test/support/dovecot.ts) whose doveadm service has an inet listener with
 * ssl = yes, doveadm_password as the shared secret, and a passwd-file whose users each have
 * their own home (the far Maildir is HOME/Maildir). The same configuration serves the client
 * side: its userdb lookup, the CA it checks the server with, and the password it sends.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { grantDovecotAccess, startDovecot, type Dovecot } from '../test/support/dovecot.js';
import type { CertFiles } from '../test/support/tls-certs.js';

export interface DoveadmServer {
  dovecot: Dovecot;
  port: number;
  /** The Dovecot master, whose process tree serves every connection. */
  masterPid(): number;
  /** Makes `user` known to both sides, with this home. */
  addUser(user: string, home: string): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function startDoveadmServer(certs: CertFiles, password: string): Promise<DoveadmServer> {
  // The master runs as nobody (as root) and reads the key itself.
  await grantDovecotAccess(certs.dir);
  const port = await freePort();
  const dovecot = await startDovecot({
    users: ['alice'],
    imap: false,
    extraConfig: `ssl = yes
ssl_cert = <${certs.serverCert}
ssl_key = <${certs.serverKey}
ssl_client_ca_file = ${certs.ca}
doveadm_password = ${password}
service doveadm {
  inet_listener {
    address = 127.0.0.1
    port = ${port}
    ssl = yes
  }
}
`,
  });
  const usersFile = join(dovecot.root, 'users');
  return {
    dovecot,
    port,
    masterPid: () => Number(readFileSync(join(dovecot.root, 'run', 'master.pid'), 'utf8')),
    addUser(user, home) {
      // passwd-file is reread when it changes; the home field wins over default_fields.
      writeFileSync(usersFile, `${readFileSync(usersFile, 'utf8')}${user}:{PLAIN}${user}-secret::::${home}::\n`);
    },
  };
}
