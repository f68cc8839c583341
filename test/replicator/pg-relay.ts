/**
 * A TCP relay in front of a test's PostgreSQL that can be cut: every session through it dropped
 * and new ones refused until it is restored, as a network outage or a server restart looks to
 * a client.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface Relay {
  port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function relay(port: number): Promise<Relay> {
  let down = false;
  const live = new Set<Socket>();
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
    client.pipe(server).pipe(client);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as { port: number }).port,
    cut() {
      down = true;
      for (const s of live) s.destroy();
    },
    restore() {
      down = false;
    },
    close() {
      down = true;
      for (const s of live) s.destroy();
      return new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

