/**
 * Which X-GUIDs a server sends can serve as message GUIDs. A GUID travels into every other
 * store: a Maildir keeps it as a space-separated field of dovecot-uidlist, the planners key
 * copies with a NUL, the state and the change index compare it byte for byte. One that cannot
 * make that trip unchanged (a space, a control or non-ASCII byte, nothing at all, or absurdly
 * long) comes back from the other side as another GUID, and the two sides then disagree on every
 * run. Such a message is treated as one without an X-GUID: it is known by its header hash.
 */
const USABLE = /^[\x21-\x7e]{1,128}$/;

export function usableServerGuid(guid: string): boolean {
  return USABLE.test(guid);
}
