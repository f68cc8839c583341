/**
 * A store served over an in-process pipe and the RemoteStore talking to it: the whole protocol
 * without processes, for the contract suite and the protocol's own tests.
 */
import { openStore } from '../../src/storage/open-store.js';
import { RemoteStore } from '../../src/remote/remote-store.js';
import { serveStore } from '../../src/remote/store-server.js';
import type { MailStore } from '../../src/storage/store.js';
import { duplexPair } from './duplex-pair.js';

export interface InProcessOptions {
  compress?: boolean;
  timeoutMs?: number;
  rawlog?: (line: string) => void;
  /** Wraps the served store (to watch or slow its calls). */
  wrap?: (store: MailStore) => MailStore;
  /** Seconds the served store waits for its locks (default 30). */
  lockSeconds?: number;
}

export async function connectInProcess(location: string, options: InProcessOptions = {}): Promise<{ store: RemoteStore; served: Promise<void> }> {
  const [client, server] = duplexPair();
  const compress = options.compress ?? true;
  const served = serveStore(server, {
    label: 'test client',
    compress,
    async open(req) {
      const store = await openStore(location, { create: req.create, force: req.force, fsync: false, lockTimeoutSeconds: req.lockSeconds, warn: () => {} });
      return { store: options.wrap ? options.wrap(store) : store, location };
    },
  });
  served.catch(() => {});
  const store = await RemoteStore.connect(client, {
    label: 'remote test',
    location: `remote:test:${location}`,
    open: { create: true, force: false, lockSeconds: options.lockSeconds ?? 30, runLock: false },
    compress,
    timeoutMs: options.timeoutMs ?? 20_000,
    rawlog: options.rawlog,
    onClosed: () => served.catch(() => {}),
  });
  return { store, served };
}
