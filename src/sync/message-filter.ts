/**
 * Which messages a run copies: `-t DATE` (received at or after), `-e DATE` (received before),
 * `-O [-]FLAG` (with, or without, a flag or keyword), `-I SIZE` (at most this big). As in
 * dsync, the filters choose what is copied; they never make a message look deleted.
 */
import { usageError } from '../model/errors.js';
import type { MessageMeta } from '../storage/store.js';

export interface MessageFilterSpec {
  since?: string;
  before?: string;
  flag?: string;
  maxSize?: string;
}

export type MessageFilter = (m: MessageMeta) => boolean;

/** A date as dsync takes it: UNIX seconds, an ISO date/time, or an interval back from now (`30d`, `12h`, `2w`). */
export function parseDate(text: string, option: string, now = Date.now()): number {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const rel = /^(\d+)\s*(s|m|h|d|w)$/.exec(text);
  if (rel) {
    const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[rel[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return now - Number(rel[1]) * unit * 1000;
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw usageError(`invalid ${option} '${text}': expected UNIX seconds, an ISO date (2024-01-31) or an interval (30d)`);
  return t;
}

export function parseSize(text: string, option: string): number {
  const m = /^(\d+)\s*([kKmMgG]?)[bB]?$/.exec(text);
  if (!m) throw usageError(`invalid ${option} '${text}': expected a size such as 500k, 20M or 1G`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

const SYSTEM = new Map(['\\answered', '\\flagged', '\\deleted', '\\seen', '\\draft'].map((f) => [f, f]));

export function messageFilter(spec: MessageFilterSpec): MessageFilter | undefined {
  const checks: MessageFilter[] = [];
  if (spec.since !== undefined) {
    const t = parseDate(spec.since, '-t');
    checks.push((m) => m.receivedDate >= t);
  }
  if (spec.before !== undefined) {
    const t = parseDate(spec.before, '-e');
    checks.push((m) => m.receivedDate < t);
  }
  if (spec.flag !== undefined) {
    const negate = spec.flag.startsWith('-');
    const flag = negate ? spec.flag.slice(1) : spec.flag;
    if (flag === '') throw usageError("invalid -O '': expected a flag such as \\Seen or a keyword, optionally with a leading '-'");
    const system = SYSTEM.get(flag.toLowerCase());
    const has = system
      ? (m: MessageMeta) => m.flags.some((f) => f.toLowerCase() === system)
      : (m: MessageMeta) => m.keywords.some((k) => k.toLowerCase() === flag.toLowerCase());
    checks.push(negate ? (m) => !has(m) : has);
  }
  if (spec.maxSize !== undefined) {
    const max = parseSize(spec.maxSize, '-I');
    checks.push((m) => m.size <= max);
  }
  if (checks.length === 0) return undefined;
  return (m) => checks.every((c) => c(m));
}
