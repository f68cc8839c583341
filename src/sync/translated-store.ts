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

/** Everything that takes or returns a mailbox name is translated; the rest passes through. */
export function translatedStore(inner: MailStore, t: NameTranslation): MailStore {
  const own = (name: MailboxName) => t.own(name);
  const translated: Partial<MailStore> = {
    listMailboxes: async () => translatedList(await inner.listMailboxes(), t),
    mailboxStatus: async (name) => {
      const s = await inner.mailboxStatus(own(name));
      return s && { ...s, name };
    },
    getMessages: (name, since) => inner.getMessages(own(name), since),
    getMessagesOf: inner.getMessagesOf && ((name, which) => inner.getMessagesOf!(own(name), which)),
    openMessage: (name, uid) => inner.openMessage(own(name), uid),
    messageHashes: (name, uids) => inner.messageHashes(own(name), uids),
    adoptGuids: inner.adoptGuids && ((name, guids) => inner.adoptGuids!(own(name), guids)),
    flagChangeTimes: inner.flagChangeTimes && ((name, uids) => inner.flagChangeTimes!(own(name), uids)),
    saveMessages: (name, messages) => inner.saveMessages(own(name), messages),
    updateFlags: (name, updates) => inner.updateFlags(own(name), updates),
    expunge: (name, uids) => inner.expunge(own(name), uids),
    createMailbox: async (name, options) => ({ ...(await inner.createMailbox(own(name), options)), name }),
    renameMailbox: (from, to) => inner.renameMailbox(own(from), own(to)),
    deleteMailbox: (name) => inner.deleteMailbox(own(name)),
    updateMailbox: async (name, update) => ({ ...(await inner.updateMailbox(own(name), update)), name }),
    setSubscribed: (name, subscribed) => inner.setSubscribed(own(name), subscribed),
  };
  return new Proxy(inner, {
    get(target, prop) {
      if (Object.hasOwn(translated, prop)) return translated[prop as keyof MailStore];
      // The store's own getters and methods run on the store itself, not on this wrapper.
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
