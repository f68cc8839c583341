/**
 * A minimal LMTP client for the replication case's deliveries: one connection a message, as a
 * mail transfer agent hands mail to Dovecot's LMTP (LHLO, MAIL FROM, RCPT TO, DATA, QUIT).
 * Resolves once the recipient's reply to DATA is 250, the moment the message is delivered.
 */
import { connect } from 'node:net';

/** The message with CRLF line ends and leading dots doubled, then the end-of-data line. */
function dataOf(body: Buffer): Buffer {
  const text = body.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
  return Buffer.from(`${text}${text.endsWith('\r\n') ? '' : '\r\n'}.\r\n`, 'latin1');
}

export function lmtpDeliver(port: number, recipient: string, body: Buffer, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    const steps: { send?: Buffer | string; expect: string }[] = [
      { expect: '220' },
      { send: 'LHLO bench.invalid\r\n', expect: '250' },
      { send: 'MAIL FROM:<sender@bench.invalid>\r\n', expect: '250' },
      { send: `RCPT TO:<${recipient}>\r\n`, expect: '250' },
      { send: 'DATA\r\n', expect: '354' },
      { send: dataOf(body), expect: '250' },
    ];
    let buf = '';
    let step = 0;
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        sock.destroy();
        reject(err);
      } else {
        // The delivery is done; QUIT only closes politely.
        sock.end('QUIT\r\n');
        resolve();
      }
    };
    const timer = setTimeout(() => finish(new Error(`LMTP delivery to ${recipient} took over ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (e) => finish(new Error(`LMTP delivery to ${recipient} on 127.0.0.1:${port}: ${e.message}`)));
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      for (let nl = buf.indexOf('\r\n'); nl >= 0 && !settled; nl = buf.indexOf('\r\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        // A multi-line reply goes on while the code is followed by '-'.
        if (line[3] === '-') continue;
        const want = steps[step]!.expect;
        if (!line.startsWith(want)) return finish(new Error(`LMTP delivery to ${recipient}: expected ${want}, got "${line.slice(0, 200)}"`));
        step++;
        if (step === steps.length) return finish();
        sock.write(steps[step]!.send!);
      }
    });
  });
}
