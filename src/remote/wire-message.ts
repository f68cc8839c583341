/**
 * One request or reply as frames' payloads, and back, pure: JSON in the final frame, long
 * arrays split into Part frames of about {@link PART_BUDGET} bytes ahead of it, so no frame
 * passes the hard limit and no side builds one huge string. The receiving side checks each
 * item as its Part arrives and counts them against {@link MAX_ITEMS}.
 */
import { MAX_FRAME_PAYLOAD } from './frame-codec.js';
import { ProtocolError } from './protocol-error.js';
import { object, str, type Check } from './wire-check.js';
import type { WireSpec } from './wire-ops.js';

export const PART_BUDGET = 256 * 1024;
/** Items of one message, all arrays together: a mailbox of two million messages still passes. */
export const MAX_ITEMS = 2_000_000;

export interface EncodedMessage {
  parts: Buffer[];
  final: Buffer;
}

/** `head` goes first in every payload (a request's `op`). */
export function encodeMessage<T>(spec: WireSpec<T>, value: T, head: Record<string, unknown> = {}): EncodedMessage {
  const obj = { ...head, ...spec.encode(value) };
  const parts: Buffer[] = [];
  const headJson = JSON.stringify(head).slice(1, -1);
  const lead = headJson === '' ? '{' : `{${headJson},`;
  for (const field of Object.keys(spec.chunked)) {
    const items = obj[field];
    if (!Array.isArray(items) || items.length === 0) continue;
    const encoded = items.map((i) => JSON.stringify(i));
    const total = encoded.reduce((n, s) => n + s.length + 1, 0);
    if (total <= PART_BUDGET) continue;
    let batch: string[] = [];
    let size = 0;
    const flush = () => {
      parts.push(Buffer.from(`${lead}"f":${JSON.stringify(field)},"items":[${batch.join(',')}]}`));
      batch = [];
      size = 0;
    };
    for (const s of encoded) {
      if (s.length > MAX_FRAME_PAYLOAD - 1024) throw new RangeError(`one ${field} item of ${s.length} bytes cannot be sent`);
      if (size + s.length + 1 > PART_BUDGET && batch.length > 0) flush();
      batch.push(s);
      size += s.length + 1;
    }
    if (batch.length > 0) flush();
    obj[field] = [];
  }
  const final = Buffer.from(JSON.stringify(obj));
  if (final.length > MAX_FRAME_PAYLOAD) throw new RangeError(`a message of ${final.length} bytes cannot be sent in one frame`);
  for (const p of parts) if (p.length > MAX_FRAME_PAYLOAD) throw new RangeError(`a part of ${p.length} bytes cannot be sent in one frame`);
  return { parts, final };
}

/** JSON that must be an object; anything else is the peer's fault. */
export function parseObject(payload: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError(`${what}: not valid JSON`);
  }
  return object(v, what);
}

/** Collects the Part frames of one message, then decodes it from its final frame. */
export class MessageAssembler {
  private readonly items = new Map<string, unknown[]>();
  private count = 0;

  constructor(
    private readonly chunked: Readonly<Record<string, Check<unknown>>>,
    private readonly what: string,
  ) {}

  /** Items taken so far. */
  get itemCount(): number {
    return this.count;
  }

  /** A Part frame, already parsed. */
  addPart(o: Record<string, unknown>): void {
    const field = str(64)(o.f, `${this.what} part.f`);
    const check = Object.hasOwn(this.chunked, field) ? this.chunked[field] : undefined;
    if (!check) throw new ProtocolError(`${this.what}: a part for '${field}', which does not come in parts`);
    this.take(field, o.items, check, 'part');
  }

  finish<T>(spec: WireSpec<T>, o: Record<string, unknown>): T {
    const out: Record<string, unknown> = { ...o };
    for (const [field, check] of Object.entries(this.chunked)) {
      if (o[field] !== undefined) this.take(field, o[field], check, 'final');
      out[field] = this.items.get(field) ?? [];
    }
    return spec.decode(out, this.what);
  }

  private take(field: string, items: unknown, check: Check<unknown>, where: string): void {
    if (!Array.isArray(items)) throw new ProtocolError(`${this.what}.${field} (${where}): expected an array`);
    this.count += items.length;
    if (this.count > MAX_ITEMS) throw new ProtocolError(`${this.what}: more than ${MAX_ITEMS} items`);
    let list = this.items.get(field);
    if (!list) this.items.set(field, (list = []));
    const base = list.length;
    for (let i = 0; i < items.length; i++) list.push(check(items[i], `${this.what}.${field}[${base + i}]`));
  }
}
