/**
 * Non-synchronizing literals (RFC 7888) for the commands that carry message bodies. imapflow
 * writes `{N+}` only as LITERAL- allows (up to 4096 bytes), even to a server that offers
 * LITERAL+, and waits for the server's "+" before every larger literal: a MULTIAPPEND of 64
 * messages was up to 64 round trips instead of one, and on the corpus upload (case 6 of the
 * bench) those waits were a third of the run. A command marked here is compiled with LITERAL+
 * and written whole, as imapflow's own send() writes a command without literals; everything
 * else goes through imapflow's send() as before. Where imapflow's internals are not what
 * this was written against, nothing is changed and the literals stay synchronizing.
 */
import { createRequire } from 'node:module';
import type { ImapFlow } from 'imapflow';

interface Outgoing {
  tag: string;
  command: string;
  attributes: unknown[];
  options?: { onSend?: () => void };
}

/** What imapflow 2.x's send() works with. */
interface Internals {
  send(data: Outgoing): Promise<void>;
  write(chunk: Buffer): unknown;
  commandParts: Buffer[];
  rawSensitiveCommand: boolean;
  currentRequest?: { tag: string; sent?: boolean } | null;
  state: unknown;
  states: { LOGOUT: unknown };
  capabilities: Map<string, unknown>;
}

type Compiler = (data: Outgoing, options: { asArray: boolean; literalPlus: boolean }) => Buffer[];

let compiler: Compiler | null | undefined;

function loadCompiler(): Compiler | null {
  if (compiler !== undefined) return compiler;
  try {
    const m = createRequire(import.meta.url)('imapflow/lib/handler/imap-handler.js') as { compiler?: unknown };
    compiler = typeof m.compiler === 'function' ? (m.compiler as Compiler) : null;
  } catch {
    compiler = null;
  }
  return compiler;
}

/** The attribute lists of commands to send with LITERAL+. */
const marked = new WeakSet<object>();
const patched = new WeakSet<object>();

function patch(client: Internals, compile: Compiler): void {
  if (patched.has(client)) return;
  patched.add(client);
  const original = client.send;
  client.send = async function send(this: Internals, data: Outgoing): Promise<void> {
    if (!marked.has(data.attributes) || this.state === this.states.LOGOUT) return original.call(this, data);
    marked.delete(data.attributes);
    const parts = compile(data, { asArray: true, literalPlus: true });
    // With LITERAL+ every literal follows its size at once: one part. Anything else is not
    // what this was written for, and imapflow's own send() handles it.
    if (parts.length !== 1) return original.call(this, data);
    this.rawSensitiveCommand = false;
    this.commandParts = parts;
    this.write(this.commandParts.shift()!);
    if (this.currentRequest && this.currentRequest.tag === data.tag) this.currentRequest.sent = true;
    try {
      data.options?.onSend?.();
    } catch {
      // on the wire already: a failing callback must not fail the command (as in imapflow)
    }
  };
}

/**
 * Marks `attributes` (an exec() attribute list) to be sent with non-synchronizing literals,
 * when the server offers LITERAL+ and imapflow is the one this knows. Returns whether it will.
 */
export function withLiteralPlus(client: ImapFlow, attributes: unknown[]): boolean {
  const c = client as unknown as Partial<Internals>;
  if (!client.capabilities.has('LITERAL+')) return false;
  const compile = loadCompiler();
  if (!compile || typeof c.send !== 'function' || typeof c.write !== 'function' || !Array.isArray(c.commandParts) || !c.states || !('LOGOUT' in c.states)) return false;
  patch(c as Internals, compile);
  marked.add(attributes);
  return true;
}
