/**
 * The client end of the control socket, for `mailferry replicator status|replicate|add|remove|
 * dsync-status`: one request, one reply. No replicator listening is a temporary failure (75)
 * that names the socket; a socket the caller may not open is a permission problem (77).
 */
import { connect } from 'node:net';
import { MailferryError, tempError } from '../model/errors.js';
import { MAX_LINE, type ControlReply, type ControlRequest } from './control-protocol.js';

export async function controlRequest(path: string, request: ControlRequest, timeoutMs = 60_000): Promise<Extract<ControlReply, { ok: true }>> {
  const reply = await new Promise<ControlReply>((resolve, reject) => {
    const socket = connect(path);
    let buffered = '';
    let settled = false;
    const fail = (err: MailferryError) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(timeoutMs, () => fail(tempError(`the replicator at ${path} did not answer within ${Math.round(timeoutMs / 1000)} s`)));
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EACCES' || err.code === 'EPERM') fail(new MailferryError('permission', `control socket ${path}: permission denied (the replicator's socket is its owner's alone)`));
      else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') fail(tempError(`no mailferry replicator answers at ${path} (${err.code}): is it running? (--socket names another)`));
      else fail(tempError(`control socket ${path}: ${err.message}`));
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) {
        if (buffered.length > 64 * MAX_LINE) fail(tempError(`the replicator at ${path} sent an overlong reply`));
        return;
      }
      settled = true;
      socket.end();
      try {
        resolve(JSON.parse(buffered.slice(0, nl)) as ControlReply);
      } catch {
        reject(tempError(`the replicator at ${path} sent a reply that is not JSON`));
      }
    });
    socket.on('close', () => fail(tempError(`the replicator at ${path} closed the connection without a reply`)));
  });
  if (!reply.ok) {
    const kind = reply.exitCode === 67 ? 'nouser' : reply.exitCode === 64 ? 'usage' : reply.exitCode === 77 ? 'permission' : reply.exitCode === 78 ? 'config' : reply.exitCode === 65 ? 'data' : 'tempfail';
    throw new MailferryError(kind, reply.error);
  }
  return reply;
}
