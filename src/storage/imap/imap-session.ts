/**
 * One logical IMAP session that survives dropped connections: every operation runs through
 * `run`, which reconnects with backoff when the socket dies or the server asks us to slow
 * down, and gives up with a tempfail (exit 75) only after the retries, or the time `-T` gives
 * an operation (op-budget.ts), are spent. Operations
 * passed to `run` must be safe to repeat (reads, STOREs to a full flag set, UID EXPUNGE);
 * APPEND is made safe by the caller (see imap-append.ts).
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ImapFlow, ImapFlowOptions } from 'imapflow';
import type { ImapLocation } from '../../config/imap-location.js';
import { configError, fsError, MailferryError, tempError } from '../../model/errors.js';
import { runTokenCommand, type ImapSecret } from './imap-credentials.js';
import { imapError, isConnectionError, isThrottle } from './imap-errors.js';
import { CONNECTION_LITERAL_CAP } from './literal-cap.js';
import { loadImapFlow } from './load-imapflow.js';
import { CommandWatch, OpBudget } from './op-budget.js';
import { ServerFeatures, serverIdentity } from './server-features.js';

export interface SessionOptions {
  ioTimeoutSeconds?: number;
  /** Attempts per operation before giving up (default 5). */
  retries?: number;
  /** First backoff in milliseconds, doubled per attempt (default 200). */
  backoffMs?: number;
  /** Never use X-GUID even where offered (identity by the side index and header hashes). */
  ignoreXGuid?: boolean;
  /** Where what was learnt about the server is kept between runs (server-features.ts). */
  stateDir?: string;
  warn: (msg: string) => void;
}

export class ImapSession {
  readonly account: string;
  private client: ImapFlow | undefined;
  private connecting: Promise<ImapFlow> | undefined;
  private closed = false;
  /** Set when the server answered FETCH X-GUID (Dovecot). */
  xGuid = false;
  /** Called after every (re)connect, before the operation retried. */
  onReconnect?: () => void;
  private connects = 0;
  /** The connection being made, so a spent budget can drop it too. */
  private opening: ImapFlow | undefined;
  private readonly watches = new WeakMap<ImapFlow, CommandWatch>();
  private readonly budgets = new Set<OpBudget>();
  private ticker: NodeJS.Timeout | undefined;

  constructor(
    private readonly loc: ImapLocation,
    private readonly secret: ImapSecret,
    private readonly options: SessionOptions,
  ) {
    this.account = `${loc.raw.startsWith('imaps') ? 'imaps' : 'imap'}://${loc.user}@${loc.host}:${loc.port}`;
  }

  private async clientOptions(): Promise<ImapFlowOptions> {
    const loc = this.loc;
    const tls: ImapFlowOptions['tls'] = { rejectUnauthorized: true, servername: /^[\d.:]+$/.test(loc.host) ? undefined : loc.host };
    if (loc.caFile) {
      try {
        (tls as { ca?: (string | Buffer)[] }).ca = [readFileSync(loc.caFile)];
      } catch (err) {
        throw fsError(err, `cafile ${loc.caFile}`);
      }
    }
    // Half of -T, so a stall found by one of these leaves time for a retry (op-budget.ts).
    const timeout = this.timeoutMs() > 0 ? Math.max(1, Math.floor(this.timeoutMs() / 2)) : undefined;
    const auth: ImapFlowOptions['auth'] = { user: loc.user };
    if (this.secret.kind === 'token') auth.accessToken = await runTokenCommand(this.secret.command);
    else auth.pass = this.secret.password;
    if (loc.auth === 'plain') auth.loginMethod = 'AUTH=PLAIN';
    if (loc.auth === 'login') auth.loginMethod = 'LOGIN';
    return {
      host: loc.host,
      port: loc.port,
      secure: loc.tls === 'implicit',
      doSTARTTLS: loc.tls === 'required' ? true : loc.tls === 'none' ? false : undefined,
      tls,
      auth,
      logger: false,
      qresync: true,
      disableAutoIdle: true,
      clientInfo: { name: 'mailferry' },
      // No line or literal a server sends is held whole beyond these (bodies: literal-cap.ts).
      maxLiteralSize: CONNECTION_LITERAL_CAP,
      maxLineLength: CONNECTION_LITERAL_CAP,
      maxResponseSize: 2 * CONNECTION_LITERAL_CAP,
      ...(timeout ? { socketTimeout: timeout, connectionTimeout: timeout, greetingTimeout: timeout } : {}),
    } as ImapFlowOptions;
  }

  private async connect(): Promise<ImapFlow> {
    const { ImapFlow } = loadImapFlow();
    const client = new ImapFlow(await this.clientOptions());
    client.on('error', () => {}); // surfaced through the failing command instead
    let ready = false;
    if (this.timeoutMs() > 0) {
      // What logging in completes is not progress of the operation that needed the connection.
      this.watches.set(client, new CommandWatch(client, () => ready && this.progress()));
      this.startTicker();
    }
    this.opening = client;
    try {
      await client.connect();
      ready = true;
    } catch (err) {
      client.close();
      if (this.loc.tls === 'required' && !client.secureConnection && /STARTTLS/i.test(String((err as Error).message))) {
        throw configError(`${this.account}: the server offers no STARTTLS and tls=required`);
      }
      throw err;
    } finally {
      this.opening = undefined;
    }
    if (this.connects++ === 0) this.xGuid = !this.options.ignoreXGuid && (await this.offersXGuid(client));
    return client;
  }

  private async offersXGuid(client: ImapFlow): Promise<boolean> {
    const features = this.options.stateDir ? new ServerFeatures(this.options.stateDir) : undefined;
    const identity = serverIdentity(client);
    const known = features?.xGuid(identity);
    if (known !== undefined) return known;
    const found = await probeXGuid(client);
    features?.rememberXGuid(identity, found);
    return found;
  }

  /** The live client, connecting when there is none. */
  async get(): Promise<ImapFlow> {
    if (this.closed) throw new Error('IMAP session is closed');
    if (this.client?.usable) return this.client;
    this.client = undefined;
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    this.client = await this.connecting;
    return this.client;
  }

  private timeoutMs(): number {
    const t = this.options.ioTimeoutSeconds ?? 0;
    return t > 0 ? t * 1000 : 0;
  }

  /**
   * The time `-T` gives one operation, shared by its retries (op-budget.ts); undefined without
   * -T. `release` when the operation is over.
   */
  budget(): { budget: OpBudget | undefined; release: () => void } {
    if (this.timeoutMs() === 0) return { budget: undefined, release: () => {} };
    const budget = new OpBudget(this.timeoutMs());
    this.budgets.add(budget);
    return { budget, release: () => this.budgets.delete(budget) };
  }

  /** The error for an operation whose budget is spent. */
  timedOut(what: string, cause?: unknown): MailferryError {
    const s = this.options.ioTimeoutSeconds ?? 0;
    return tempError(`${what === '' ? this.account : `${this.account}: ${what}`}: no answer from the server within ${s} s (-T ${s})`, cause);
  }

  private progress(): void {
    for (const b of this.budgets) b.progress();
  }

  /** Drops a connection whose command stalls, or that an operation out of time waits on. */
  private startTicker(): void {
    if (this.ticker) return;
    const stallMs = this.timeoutMs() / 2;
    this.ticker = setInterval(() => {
      const spent = [...this.budgets].some((b) => b.spent());
      for (const c of [this.client, this.opening]) {
        if (c && (spent || this.watches.get(c)?.stalled(stallMs))) c.close();
      }
    }, Math.min(1000, Math.max(25, stallMs / 8)));
    this.ticker.unref();
  }

  /** Runs `op`, reconnecting and repeating it after connection loss or throttling. */
  async run<T>(what: string, op: (client: ImapFlow) => Promise<T>): Promise<T> {
    const retries = this.options.retries ?? 5;
    const backoff = this.options.backoffMs ?? 200;
    const { budget, release } = this.budget();
    try {
      for (let attempt = 1; ; attempt++) {
        let client: ImapFlow | undefined;
        try {
          const reconnecting = this.connects > 0 && !this.client?.usable;
          client = await this.get();
          if (reconnecting) this.onReconnect?.();
          return await op(client);
        } catch (err) {
          budget?.fail();
          const retriable = isConnectionError(err) || isThrottle(err);
          // Authentication and refusals are final; so is a first connect that was refused outright.
          const neverConnected = this.connects === 0;
          if (retriable && budget?.spent()) throw this.timedOut(what, err);
          if (!retriable || attempt >= retries || neverConnected) throw imapError(err, what === '' ? this.account : `${this.account}: ${what}`);
          if (client && isConnectionError(err)) {
            client.close();
            if (this.client === client) this.client = undefined;
          }
          const delay = this.backoff(backoff, attempt, budget, what, err);
          this.options.warn(`${this.account}: ${isThrottle(err) ? 'server busy' : 'connection lost'}; retrying in ${delay} ms (attempt ${attempt + 1} of ${retries})`);
          await sleep(delay);
        }
      }
    } finally {
      release();
    }
  }

  /** The wait before retry `attempt + 1`; a wait the budget cannot afford fails now instead. */
  backoff(first: number, attempt: number, budget: OpBudget | undefined, what: string, err: unknown): number {
    const delay = Math.min(first * 2 ** (attempt - 1), 10_000);
    if (budget && delay >= budget.left()) throw this.timedOut(what, err);
    return delay;
  }

  /** Capabilities and enabled extensions of the live connection (empty before the first). */
  capabilities(): string[] {
    const c = this.client;
    return c ? [...c.capabilities.keys(), ...[...c.enabled].map((e) => `ENABLED ${e}`)] : [];
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    const c = this.client;
    this.client = undefined;
    if (!c) return;
    try {
      // The timer must not keep the process alive once LOGOUT has answered.
      if (c.usable) await Promise.race([c.logout(), sleep(2000, undefined, { ref: false })]);
    } catch {
      // the connection is going away either way
    } finally {
      c.close();
    }
  }
}

/** Dovecot answers FETCH X-GUID; other servers refuse it with BAD, which costs nothing. */
async function probeXGuid(client: ImapFlow): Promise<boolean> {
  try {
    await client.mailboxOpen('INBOX', { readOnly: true });
    const r = await (client as unknown as RawExec).exec('UID FETCH', [{ type: 'SEQUENCE', value: '1' }, [{ type: 'ATOM', value: 'UID' }, { type: 'ATOM', value: 'X-GUID' }]], {});
    r.next();
    return true;
  } catch (err) {
    if (isConnectionError(err)) throw err;
    return false;
  }
}

/** imapflow's command primitive; not in its public types, but stable since 1.0. */
export interface RawExec {
  exec(
    command: string,
    attributes: unknown[] | false,
    options: { untagged?: Record<string, (u: RawUntagged) => Promise<void> | void>; onSend?: () => void },
  ): Promise<{ next(): void; response: { attributes?: RawAttribute[] } }>;
}

export interface RawAttribute {
  type: string;
  value: unknown;
  section?: RawAttribute[];
}

export interface RawUntagged {
  command: string;
  attributes: (RawAttribute | RawAttribute[])[];
}

export function raw(client: ImapFlow): RawExec {
  return client as unknown as RawExec;
}
