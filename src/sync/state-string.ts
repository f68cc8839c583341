/**
 * The `-s` state string: what the pair state of every mailbox was at the end of a sync, for
 * callers that keep it themselves (as dsync's replicator does) instead of trusting the
 * indexes. Format: `mf1.` + base64url(JSON) + `.` + CRC-32 of the JSON (8 hex digits); the
 * version prefix lets later formats coexist, the checksum catches a truncated copy-paste.
 * The empty string means "no state".
 */
import { crc32 } from 'node:zlib';
import { dataError } from '../model/errors.js';
import type { PairMailboxState, PairState } from '../storage/store.js';

const PREFIX = 'mf1.';
const FIELDS: (keyof PairMailboxState)[] = ['uidValidity', 'uidNext', 'highestModseq', 'peerUidValidity', 'peerUidNext', 'peerHighestModseq'];

export function encodeState(state: PairState): string {
  // Compact: one array of numbers per mailbox GUID, in FIELDS order.
  const compact = Object.fromEntries(Object.entries(state).map(([guid, s]) => [guid, FIELDS.map((f) => s[f])]));
  const json = JSON.stringify(compact);
  const sum = crc32(Buffer.from(json)).toString(16).padStart(8, '0');
  return `${PREFIX}${Buffer.from(json).toString('base64url')}.${sum}`;
}

/** Throws a data error naming what is wrong; the caller falls back to a full sync. */
export function decodeState(text: string): PairState {
  if (text === '') return {};
  if (!text.startsWith(PREFIX)) throw dataError(`sync state does not start with '${PREFIX}' (not a mailferry state, or a newer version)`);
  const [body = '', sum = ''] = text.slice(PREFIX.length).split('.');
  const json = Buffer.from(body, 'base64url');
  if (crc32(json).toString(16).padStart(8, '0') !== sum) throw dataError('sync state checksum mismatch (truncated or altered)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch {
    throw dataError('sync state is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw dataError('sync state has the wrong shape');
  const state: PairState = {};
  for (const [guid, values] of Object.entries(parsed)) {
    if (!/^[0-9a-f]{32}$/.test(guid) || !Array.isArray(values) || values.length !== FIELDS.length || !values.every((v) => Number.isSafeInteger(v) && v >= 0)) {
      throw dataError(`sync state entry for '${guid}' is malformed`);
    }
    state[guid] = Object.fromEntries(FIELDS.map((f, i) => [f, values[i] as number])) as unknown as PairMailboxState;
  }
  return state;
}
