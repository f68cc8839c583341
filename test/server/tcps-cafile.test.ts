/**
 * tcps: with a cafile tries the cafile alone first and keeps that connection only when it
 * proves the server, chain and name both: a certificate the cafile's CA signed for another
 * name is still refused (78, naming the mismatch), as with every CA in the trust set.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { corpusMessages } from '../support/corpus.js';
import { errorLines, mf, startServer, type ServerProcess } from './server-harness.js';
import { fill, makeServerSite, type ServerSite } from './server-site.js';

describe('tcps: a cafile that signed the server for another name', { timeout: 60_000 }, () => {
  let site: ServerSite;
  let server: ServerProcess;

  before(async () => {
    site = makeServerSite(['alice']);
    await fill(site, site.local('src'), corpusMessages(5));
    const dir = site.certs.dir;
    const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    writeFileSync(join(dir, 'other.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:other.example\n');
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'other.key', '-out', 'other.csr', '-subj', '/CN=other.example']);
    openssl(['x509', '-req', '-in', 'other.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'other.crt', '-days', '2', '-extfile', 'other.ext']);
    const args = site.serverArgs.map((a) => (a === site.certs.serverCert ? join(dir, 'other.crt') : a === site.certs.serverKey ? join(dir, 'other.key') : a));
    server = await startServer(args, { settings: site.serverSettings });
  });
  after(async () => {
    await server?.stop();
    site?.cleanup();
  });

  it('is refused with 78 naming the mismatch, and nothing is sent', async () => {
    const r = await mf(['backup', site.local('src'), site.tcps(server.port, 'alice')], { settings: site.clientSettings });
    assert.equal(r.code, 78, r.stderr);
    const lines = errorLines(r);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /the server's certificate is not trusted: Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1 .*checked against the system's CAs and .*ca\.crt/);
    // Neither handshake got as far as a user: the server never heard one.
    assert.ok(!server.lines.some((l) => / user=/.test(l.text)), server.lines.map((l) => l.text).join('\n'));
  });
});
