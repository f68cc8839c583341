/**
 * A TCP relay in front of a test's PostgreSQL that can be cut: every session through it dropped
 * and new ones refused until it is restored, as a network outage or a server restart looks to
 * a client. `cutAfter` cuts at one exact point of the protocol: a statement reaches the server
 * and is carried out there, but its answer never comes back (a COMMIT whose reply is lost).
 */
import { connect, createServer, type Socket } from 'node:net';

export interface Relay {
  port: number;
  cut(): void;
  restore(): void;
  /**
   * On the first session that sends something matching `armed`, the next message matching
   * `then` goes to the server, which is then hung up on; nothing more comes back to the client,
   * and everything is cut as by cut(). Resolves once that happened.
   */
  cutAfter(armed: RegExp, then: RegExp): Promise<void>;
  close(): Promise<void>;
}

interface Trap {
  armed: RegExp;
  then: RegExp;
  sprung(): void;
}

export async function relay(port: number): Promise<Relay> {
  let down = false;
  let trap: Trap | undefined;
  const live = new Set<Socket>();
  const cutAll = () => {
    down = true;
    for (const s of live) s.destroy();
  };
  const srv = createServer((client) => {
    if (down) return void client.destroy();
    const server = connect(port, '127.0.0.1');
    for (const s of [client, server]) {
      live.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        live.delete(s);
        client.destroy();
        server.destroy();
      });
    }
    let armedHere = false;
    let swallowing = false;
    client.on('data', (chunk: Buffer) => {
      if (swallowing) return;
      // Protocol messages carry their SQL as text: good enough to recognise one statement.
      const text = chunk.toString('latin1');
      const t = trap;
      if (t !== undefined && !armedHere && t.armed.test(text)) armedHere = true;
      else if (t !== undefined && armedHere && t.then.test(text)) {
        trap = undefined;
        swallowing = true;
        // The message is written, and the server hung up on after it: it carries it out, then sees the end.
        live.delete(server);
        server.removeAllListeners('close');
        server.on('close', () => {});
        server.end(chunk, () => {
          cutAll();
          t.sprung();
        });
        return;
      }
      server.write(chunk);
    });
    server.on('data', (chunk: Buffer) => {
      if (!swallowing) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as { port: number }).port,
    cut: cutAll,
    restore() {
      down = false;
    },
    cutAfter(armed, then) {
      return new Promise<void>((resolve) => {
        trap = { armed, then, sprung: resolve };
      });
    },
    close() {
      trap = undefined;
      cutAll();
      return new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}
