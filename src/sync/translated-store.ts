/**
 * A store seen through a name translation (see special-use-names.ts): it lists its mailboxes
 * under the other side's names and takes those names in every call, so the planners and
 * executors need not know that two names mean one folder.
 */
import type { MailboxList, MailboxListChange, MailboxName, MailStore } from '../storage/store.js';
import type { NameTranslation } from './special-use-names.js';

/** A listing of the inner store as the translated store lists it. */
export function translatedList(list: MailboxList, t: NameTranslation): MailboxList {
  const shown = (name: MailboxName) => t.shown(name);
  const change = (c: MailboxListChange): MailboxListChange =>
    c.type === 'rename' ? { ...c, name: shown(c.name), oldName: shown(c.oldName) } : { ...c, name: shown(c.name) };
  return { ...list, mailboxes: list.mailboxes.map((m) => ({ ...m, name: shown(m.name) })), changes: list.changes.map(change) };
}

export function translatedStore(inner: MailStore, t: NameTranslation): MailStore {
  const own = (name: MailboxName) => t.own(name);
  const store: MailStore = {
    get location() {
      return inner.location;
    },
    get storeId() {
      return inner.storeId;
    },
    get separator() {
      return inner.separator;
    },
    get nativeGuids() {
      return inner.nativeGuids;
    },
    get assignsOwnUids() {
      return inner.assignsOwnUids;
    },
    get ownsSpecialUseNames() {
      return inner.ownsSpecialUseNames;
    },
    listMailboxes: async () => translatedList(await inner.listMailboxes(), t),
    async mailboxStatus(name) {
      const s = await inner.mailboxStatus(own(name));
      return s && { ...s, name };
    },
    getMessages: (name, since) => inner.getMessages(own(name), since),
    openMessage: (name, uid) => inner.openMessage(own(name), uid),
    messageHashes: (name, uids) => inner.messageHashes(own(name), uids),
    saveMessages: (name, messages) => inner.saveMessages(own(name), messages),
    updateFlags: (name, updates) => inner.updateFlags(own(name), updates),
    expunge: (name, uids) => inner.expunge(own(name), uids),
    async createMailbox(name, options) {
      const s = await inner.createMailbox(own(name), options);
      return { ...s, name };
    },
    renameMailbox: (from, to) => inner.renameMailbox(own(from), own(to)),
    deleteMailbox: (name) => inner.deleteMailbox(own(name)),
    async updateMailbox(name, update) {
      const s = await inner.updateMailbox(own(name), update);
      return { ...s, name };
    },
    setSubscribed: (name, subscribed) => inner.setSubscribed(own(name), subscribed),
    getPairState: (peerId) => inner.getPairState(peerId),
    setPairState: (peerId, state) => inner.setPairState(peerId, state),
    close: () => inner.close(),
  };
  if (inner.adoptGuids) store.adoptGuids = (name, guids) => inner.adoptGuids!(own(name), guids);
  if (inner.getSyncedFlags) store.getSyncedFlags = (peerId, box, guids) => inner.getSyncedFlags!(peerId, box, guids);
  if (inner.setSyncedFlags) store.setSyncedFlags = (peerId, box, entries, all) => inner.setSyncedFlags!(peerId, box, entries, all);
  return store;
}
