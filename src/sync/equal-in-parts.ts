/**
 * A backup's final check of a big mailbox, without a second whole listing of it: the destination
 * is read back a part at a time by UID (`getMessagesOf`) and each part compared with the same
 * UIDs of the source's listing. Held at once: the source's listing and one part, where a whole
 * listing of a 700,000-message destination cost over 100 MB beside it.
 */
import type { MailboxName, MailboxStatus, MailStore, MailboxChanges } from '../storage/store.js';
import { sameAtEveryUid } from './mailbox-plan.js';

/** UIDs read back at once. */
export const CHECK_PART = 50_000;

/**
 * True when the destination, as its status `after` counts it, holds exactly the source's messages
 * at their UIDs with their GUIDs and flags: the source's UIDs all found equal and no message
 * more than the source has. False says only that the caller must compare whole to know.
 */
export async function equalInParts(
  dest: MailStore, name: MailboxName, source: MailboxChanges, after: MailboxStatus, partSize = CHECK_PART,
): Promise<boolean> {
  const read = dest.getMessagesOf?.bind(dest);
  const all = source.messages;
  if (!read || after.messages !== all.length || after.uidValidity !== source.uidValidity || after.uidNext > source.uidNext) return false;
  // Each part checks its own order; across parts only a listing in UID order, each UID once,
  // lets the count stand for "nothing more in the destination".
  for (let i = 1; i < all.length; i++) if (all[i]!.uid <= all[i - 1]!.uid) return false;
  for (let start = 0; start < all.length; start += partSize) {
    const part = all.slice(start, start + partSize);
    const got = await read(name, { uids: new Set(part.map((m) => m.uid)), guids: new Set() });
    // Each part stands for a mailbox holding just those UIDs on both sides.
    const ours = { uidValidity: source.uidValidity, uidNext: source.uidNext, messages: part };
    if (!sameAtEveryUid(ours, got)) return false;
  }
  return true;
}
