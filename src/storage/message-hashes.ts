/**
 * Matching hashes (model/header-hash.ts) by opening each message and reading only its header;
 * the generic way for stores whose messages are local files (one open and a small read each).
 */
import { matchingHash } from '../model/header-hash.js';
import { MailferryError } from '../model/errors.js';
import { readHeader } from './read-header.js';
import type { MailboxName, MailStore } from './store.js';

export async function hashesByReading(store: Pick<MailStore, 'openMessage'>, name: MailboxName, uids: readonly number[]): Promise<Map<number, string>> {
  const hashes = new Map<number, string>();
  for (const uid of uids) {
    let stream;
    try {
      stream = await store.openMessage(name, uid);
    } catch (err) {
      if (err instanceof MailferryError && err.kind === 'notfound') continue; // expunged meanwhile
      throw err;
    }
    hashes.set(uid, matchingHash(await readHeader(stream)));
  }
  return hashes;
}
