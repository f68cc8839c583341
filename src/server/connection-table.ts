/**
 * The connections the server holds, for its limits: so many in all, so many from one address.
 * When the table is full, a connection that has not authenticated yet makes room: the oldest
 * of the address holding the most of them. A crowd of silent connections (slowloris) from a
 * few addresses then pushes out its own members, never a lone client in the middle of its
 * handshake; only when every connection is an authenticated session is a new one refused.
 */
export interface Tracked {
  /** addressKey() of the peer. */
  readonly key: string;
  authenticated: boolean;
  /** Closes the connection, saying why in its log line; it then leaves the table through release(). */
  drop(reason: string): void;
}

export interface Limits {
  maxConnections: number;
  maxPerAddress: number;
}

export type Admission = { ok: true } | { ok: false; reason: string };

export class ConnectionTable {
  /** In order of arrival: the first unauthenticated one is the oldest. */
  private readonly all = new Set<Tracked>();
  private readonly perKey = new Map<string, number>();
  /** Connections dropped to make room, since the start. */
  evicted = 0;

  constructor(private limits: Limits) {}

  setLimits(limits: Limits): void {
    this.limits = limits;
  }

  get size(): number {
    return this.all.size;
  }

  get unauthenticated(): number {
    let n = 0;
    for (const t of this.all) if (!t.authenticated) n++;
    return n;
  }

  admit(t: Tracked): Admission {
    const mine = this.perKey.get(t.key) ?? 0;
    if (mine >= this.limits.maxPerAddress) return { ok: false, reason: `${mine} connections from this address already (server_max_connections_per_address)` };
    if (this.all.size >= this.limits.maxConnections) {
      const oldest = this.roomMaker();
      if (!oldest) return { ok: false, reason: `${this.all.size} sessions already (server_max_connections)` };
      this.evicted++;
      this.release(oldest);
      oldest.drop('dropped to make room for a newer connection (server_max_connections)');
    }
    this.all.add(t);
    this.perKey.set(t.key, mine + 1);
    return { ok: true };
  }

  /** The oldest unauthenticated connection of the address with the most of them. */
  private roomMaker(): Tracked | undefined {
    const waiting = new Map<string, { n: number; oldest: Tracked }>();
    for (const x of this.all) {
      if (x.authenticated) continue;
      const w = waiting.get(x.key);
      if (w) w.n++;
      else waiting.set(x.key, { n: 1, oldest: x });
    }
    let best: { n: number; oldest: Tracked } | undefined;
    // Map order is the order of each address's oldest connection: ties go to the older.
    for (const w of waiting.values()) if (!best || w.n > best.n) best = w;
    return best?.oldest;
  }

  release(t: Tracked): void {
    if (!this.all.delete(t)) return;
    const n = (this.perKey.get(t.key) ?? 1) - 1;
    if (n <= 0) this.perKey.delete(t.key);
    else this.perKey.set(t.key, n);
  }
}
