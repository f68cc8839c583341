/**
 * A store that behaves like an IMAP server without X-GUID, built on a Maildir so tests can
 * drive it without a network: it hands out its own UIDs (wanted UIDs are ignored, UIDVALIDITY
 * and UIDNEXT cannot be set) and it has no native GUIDs: a message is known by the GUID it was
 * saved or adopted with, else by its header hash, remembered (in foreign-guids.json) at first
 * sight so that its expunge can still name it. This is what the engine must cope with for
 * every IMAP server; the IMAP store's own tests prove the real thing.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';
import {

  type CreateMailboxOptions,
  type FlagUpdate,
  type MailboxChanges,
  type MailboxList,
  type MailboxName,
  type MailboxStatus,
  type MailboxUpdate,
  type MailStore,
  type PairState,
  type SavedMessage,
  type SaveRequest,
} from '../../src/storage/store.js';
import type { Readable } from 'node:stream';

export class ForeignStore implements MailStore {
  readonly nativeGuids = false;
  readonly assignsOwnUids = true;
  private readonly file: string;
  /** Mailbox GUID -> UID -> message GUID. */
  private guids: Record<string, Record<number, string>>;

  private constructor(private readonly inner: MaildirStore, root: string) {
    this.file = join(root, 'foreign-guids.json');
    this.guids = existsSync(this.file) ? (JSON.parse(readFileSync(this.file, 'utf8')) as typeof this.guids) : {};
  }

  static open(root: string): ForeignStore {
    return new ForeignStore(MaildirStore.open(parseMaildirLocation(`maildir:${root}`), { create: true, fsync: false, warn: () => {} }), root);
  }

  get location() { return `foreign:${this.inner.location}`; }
  get storeId() { return this.inner.storeId; }
  get separator() { return this.inner.separator; }

  private save(): void {
    writeFileSync(this.file, JSON.stringify(this.guids));
  }

  private async boxGuid(name: MailboxName): Promise<string> {
    return (await this.inner.mailboxStatus(name))!.guid;
  }

  async getMessages(name: MailboxName, sinceModseq?: number): Promise<MailboxChanges> {
    const all = await this.inner.getMessages(name);
    const box = (this.guids[await this.boxGuid(name)] ??= {});
    const unseen = all.messages.filter((m) => box[m.uid] === undefined).map((m) => m.uid);
    if (unseen.length > 0) {
      for (const [uid, hash] of await this.inner.messageHashes(name, unseen)) box[uid] = hash;
      this.save();
    }
    const c = sinceModseq === undefined ? all : await this.inner.getMessages(name, sinceModseq);
    return {
      ...c,
      messages: c.messages.map((m) => ({ ...m, guid: box[m.uid] ?? m.guid })),
      expunged: c.expunged.map((e) => ({ ...e, guid: box[e.uid] ?? e.guid })),
    };
  }

  async saveMessages(name: MailboxName, messages: Iterable<SaveRequest> | AsyncIterable<SaveRequest>): Promise<SavedMessage[]> {
    const given: (string | undefined)[] = [];
    async function* withoutUids(): AsyncGenerator<SaveRequest> {
      for await (const m of messages) {
        given.push(m.guid);
        yield { ...m, uid: undefined, guid: undefined };
      }
    }
    const saved = await this.inner.saveMessages(name, withoutUids());
    const box = (this.guids[await this.boxGuid(name)] ??= {});
    const hashes = await this.inner.messageHashes(name, saved.map((s) => s.uid));
    const out = saved.map((s, i) => {
      box[s.uid] = given[i] ?? hashes.get(s.uid)!;
      return { ...s, guid: box[s.uid]! };
    });
    this.save();
    return out;
  }

  async adoptGuids(name: MailboxName, guids: readonly { uid: number; guid: string }[]): Promise<void> {
    const box = (this.guids[await this.boxGuid(name)] ??= {});
    for (const g of guids) box[g.uid] = g.guid;
    this.save();
  }

  async createMailbox(name: MailboxName, options: CreateMailboxOptions = {}): Promise<MailboxStatus> {
    return this.inner.createMailbox(name, { guid: options.guid, specialUse: options.specialUse });
  }

  async updateMailbox(name: MailboxName, update: MailboxUpdate): Promise<MailboxStatus> {
    return this.inner.updateMailbox(name, { guid: update.guid });
  }

  listMailboxes(): Promise<MailboxList> { return this.inner.listMailboxes(); }
  mailboxStatus(name: MailboxName) { return this.inner.mailboxStatus(name); }
  openMessage(name: MailboxName, uid: number): Promise<Readable> { return this.inner.openMessage(name, uid); }
  messageHashes(name: MailboxName, uids: readonly number[]) { return this.inner.messageHashes(name, uids); }
  updateFlags(name: MailboxName, updates: readonly FlagUpdate[]) { return this.inner.updateFlags(name, updates); }
  expunge(name: MailboxName, uids: readonly number[]) { return this.inner.expunge(name, uids); }
  renameMailbox(from: MailboxName, to: MailboxName) { return this.inner.renameMailbox(from, to); }
  deleteMailbox(name: MailboxName) { return this.inner.deleteMailbox(name); }
  setSubscribed(name: MailboxName, subscribed: boolean) { return this.inner.setSubscribed(name, subscribed); }
  getPairState(peerId: string): Promise<PairState> { return this.inner.getPairState(peerId); }
  setPairState(peerId: string, state: PairState) { return this.inner.setPairState(peerId, state); }
  close() { return this.inner.close(); }
}

