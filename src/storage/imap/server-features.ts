/**
 * What a server's capabilities do not announce but a probe finds out (Dovecot's FETCH
 * X-GUID), remembered in the account's state directory. The probe costs an EXAMINE and a
 * FETCH, and imapflow LISTs INBOX before that first EXAMINE: four round trips on every run,
 * and INBOX left selected, so the first look at it could not be answered by STATUS alone.
 * It is remembered with the server's identity (capabilities and ID answer); a server that
 * changes either is probed again.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';

interface Remembered {
  identity: string;
  xGuid: boolean;
}

export function serverIdentity(client: ImapFlow): string {
  return JSON.stringify([[...client.capabilities.keys()].sort(), client.serverInfo ?? null]);
}

export class ServerFeatures {
  private readonly path: string;

  constructor(private readonly dir: string) {
    this.path = join(dir, 'server-features.json');
  }

  /** Undefined when this server was not probed yet (or has changed since). */
  xGuid(identity: string): boolean | undefined {
    try {
      const r = JSON.parse(readFileSync(this.path, 'utf8')) as Remembered;
      return r.identity === identity && typeof r.xGuid === 'boolean' ? r.xGuid : undefined;
    } catch {
      return undefined;
    }
  }

  rememberXGuid(identity: string, xGuid: boolean): void {
    try {
      mkdirSync(this.dir, { recursive: true });
      const tmp = `${this.path}.tmp`;
      writeFileSync(tmp, JSON.stringify({ identity, xGuid } satisfies Remembered));
      renameSync(tmp, this.path);
    } catch {
      // only a saving for the next run: it probes again
    }
  }
}
