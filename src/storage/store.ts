/**
 * The store contract: the only view of a mail store the sync engine has.
 *
 * Every backend (Maildir, mbox, IMAP, a remote peer) implements {@link MailStore}.
 * Calls are batch-shaped on purpose: one call returns a whole mailbox's metadata or
 * applies a whole list of flag changes, so a store on the far side of a network costs
 * one round trip per mailbox, not one per message.
 *
 * Mailboxes are named by their hierarchy parts in UTF-8 (`['INBOX']`, `['Work', 'Q3']`);
 * how a store spells them on disk or on the wire (mUTF-7, `.` or `/`) is its own affair.
 */
import type { Readable } from 'node:stream';

/** A mailbox name as hierarchy components, UTF-8. INBOX is always `['INBOX']`. */
export type { MailboxName } from '../model/mailbox-name.js';
import type { MailboxName } from '../model/mailbox-name.js';

/** IMAP system flags a store keeps per message (\Recent is session state, not stored). */
export type SystemFlag = '\\Answered' | '\\Flagged' | '\\Deleted' | '\\Seen' | '\\Draft';

export const SYSTEM_FLAGS: readonly SystemFlag[] = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];

export interface MailboxStatus {
  name: MailboxName;
  /** 32 lowercase hex digits, stable across renames. */
  guid: string;
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  messages: number;
  /** RFC 6154 attributes such as `\Sent`; empty when none. */
  specialUse: string[];
  subscribed: boolean;
}

/** A change to the mailbox list, with the time it happened (seconds since the epoch). */
export type MailboxListChange =
  | { type: 'create'; guid: string; name: MailboxName; timestamp: number }
  | { type: 'rename'; guid: string; name: MailboxName; oldName: MailboxName; timestamp: number }
  | { type: 'delete'; guid: string; name: MailboxName; timestamp: number }
  | { type: 'subscribe' | 'unsubscribe'; name: MailboxName; timestamp: number };

export interface MailboxList {
  mailboxes: MailboxStatus[];
  /** Oldest first. */
  changes: MailboxListChange[];
  /** The hierarchy separator the store uses for display (`.` for Maildir++, `/` for LAYOUT=fs). */
  separator: string;
}

export interface MessageMeta {
  uid: number;
  /** The message GUID: a Maildir basename, a Dovecot X-GUID, or a header hash where none exists. */
  guid: string;
  flags: SystemFlag[];
  keywords: string[];
  modseq: number;
  /** INTERNALDATE, milliseconds since the epoch. */
  receivedDate: number;
  /** Physical size in bytes. */
  size: number;
}

export interface ExpungedMessage {
  uid: number;
  guid: string;
  modseq: number;
}

export interface MailboxChanges {
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  /** Messages that are new or changed since the asked-for modseq (all of them when asked for none). */
  messages: MessageMeta[];
  /**
   * Messages expunged since the asked-for modseq, each with the GUID it had; when no modseq
   * was asked for, every expunge the store still remembers (the proof two-way sync needs
   * before it deletes anything on the other side).
   */
  expunged: ExpungedMessage[];
  /**
   * False when the store no longer knows changes that far back (or UIDVALIDITY moved):
   * `messages` then lists every message and `expunged` is only what is still known.
   */
  incremental: boolean;
  /**
   * Entries of the mailbox the store left out because it will not read them (a symbolic link,
   * a FIFO, a file name it cannot keep), each already warned about: the mailbox holds more than
   * `messages` shows, so a copy of it is incomplete. Absent means none.
   */
  skipped?: number;
}

/** Some of a mailbox's messages, see {@link MailStore.getMessagesOf}. */
export interface MessagesOf {
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  messages: MessageMeta[];
}

export interface SaveRequest {
  /**
   * Wanted UID; honoured when it is at or above UIDNEXT, otherwise the next free UID is used.
   * Stores that assign their own UIDs ignore it.
   */
  uid?: number;
  /** GUID to keep; a new one is made when absent or not usable by the store. */
  guid?: string;
  flags: SystemFlag[];
  keywords: string[];
  receivedDate: number;
  /**
   * The UID of a message in the same mailbox of this store that this save duplicates (a
   * renumbering): a store that can may link or rename instead of calling `body`.
   */
  copyOf?: number;
  /** The message, streamed. Called at most once, when the store is ready to write it. */
  body: () => Readable | Promise<Readable>;
}

export interface SavedMessage {
  uid: number;
  guid: string;
  modseq: number;
}

export interface FlagUpdate {
  uid: number;
  /** The complete new flag set; flags not listed are removed. */
  flags: SystemFlag[];
  keywords: string[];
}

export interface CreateMailboxOptions {
  guid?: string;
  uidValidity?: number;
  specialUse?: string[];
}

export interface MailboxUpdate {
  uidValidity?: number;
  /** Raise UIDNEXT to at least this value. */
  minUidNext?: number;
  guid?: string;
  /**
   * Start UIDs over at 1 (or `minUidNext`). Only for an empty mailbox, together with the new
   * UIDVALIDITY that tells clients their cached UIDs are void.
   */
  restartUids?: boolean;
}

/** What a store remembers of one mailbox after the last sync with one peer. */
export interface PairMailboxState {
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  peerUidValidity: number;
  peerUidNext: number;
  peerHighestModseq: number;
  /**
   * Set only by a two-way sync whose own check found the two sides equal at these numbers:
   * the one state a later sync may plan from incrementally. A state without it (recorded by
   * an older mailferry, a backup, `-s` or `sync -1`) makes the next sync of a changed mailbox
   * compare it whole once.
   */
  proven?: true;
}

export interface SyncedFlags {
  flags: SystemFlag[];
  keywords: string[];
}

/** Per mailbox GUID. */
export type PairState = Record<string, PairMailboxState>;

export interface MailStore {
  /** The location string this store was opened from, as the user wrote it. */
  readonly location: string;
  /** A random identifier kept with the store, so a peer can remember it across renames of paths. */
  readonly storeId: string;
  /** The hierarchy separator for showing and parsing names (`.` for Maildir++, `/` for LAYOUT=fs). */
  readonly separator: string;
  /**
   * True when message GUIDs are the store's own and survive every client (Maildir basenames,
   * Dovecot's X-GUID). False when they are header hashes or kept only in mailferry's side index
   * (mbox, IMAP servers without X-GUID): the engine then also matches messages by header hash
   * and hands the matched GUIDs to {@link MailStore.adoptGuids}, so a first sync of two sides
   * that already hold the same mail does not duplicate it.
   */
  readonly nativeGuids: boolean;
  /**
   * True when the store hands out UIDs itself: saves cannot honour wanted UIDs and
   * updateMailbox cannot set UIDVALIDITY or UIDNEXT (an IMAP server). The engine then matches
   * messages by GUID alone and leaves each side's UIDs its own. Absent means false.
   */
  readonly assignsOwnUids?: boolean;
  /**
   * True when the store's special-use folders have names its server fixed ("Sent" on one
   * server, "Sent Items" on another): a peer's folder of the same role is then merged into
   * the store's own under its name instead of being copied beside it (an IMAP server). Between
   * two stores without it (Maildir, mbox) names are kept exactly. Absent means false.
   */
  readonly ownsSpecialUseNames?: boolean;

  /**
   * Why this store cannot hold a mailbox of this name and shape, or undefined when it can: a
   * name its layout cannot spell (a `.` inside a Maildir++ level, a level a LAYOUT=fs listing
   * would not see again), or a mailbox with mail and children where a mailbox is a file (mbox).
   * The engine asks before it creates or fills anything, skips such a mailbox with a warning
   * naming it, copies the rest, and ends with exit 2. Absent means every name is fine.
   */
  mailboxNameProblem?(name: MailboxName, shape: { hasChildren: boolean; messages: number }): string | undefined;

  /** Every mailbox with its status, plus the mailbox-list change log. */
  listMailboxes(): Promise<MailboxList>;

  /** One mailbox's status, or `undefined` when it does not exist. */
  mailboxStatus(name: MailboxName): Promise<MailboxStatus | undefined>;

  /**
   * All message metadata of a mailbox, or only what changed since `sinceModseq`
   * (expunges included, each with its GUID). Sorted by UID.
   */
  getMessages(name: MailboxName, sinceModseq?: number): Promise<MailboxChanges>;

  /**
   * The current records of the messages at these UIDs and of every copy of these GUIDs, sorted
   * by UID, with the mailbox's numbers as of that reading: what an incremental sync plans from,
   * so a change to a 100,000-message mailbox costs a look at the changed messages, not at all of
   * them. Optional: without it a changed mailbox is compared whole.
   */
  getMessagesOf?(name: MailboxName, which: { uids: ReadonlySet<number>; guids: ReadonlySet<string> }): Promise<MessagesOf>;

  /** The raw message as stored (Maildir and mbox keep LF line ends). Rejects with NotFound for an unknown UID. */
  openMessage(name: MailboxName, uid: number): Promise<Readable>;

  /**
   * The header hash (see model/header-hash.ts) of each asked-for message, read from its header.
   * UIDs that no longer exist are left out of the result.
   */
  messageHashes(name: MailboxName, uids: readonly number[]): Promise<Map<number, string>>;

  /**
   * Makes these messages carry these GUIDs from now on (kept in the side index). Only stores
   * without native GUIDs need it; the others reject it.
   */
  adoptGuids?(name: MailboxName, guids: readonly { uid: number; guid: string }[]): Promise<void>;

  /** Saves messages in order; each is durable before its result is reported. */
  saveMessages(name: MailboxName, messages: Iterable<SaveRequest> | AsyncIterable<SaveRequest>): Promise<SavedMessage[]>;

  /** Replaces flags and keywords of many messages; UIDs that no longer exist are skipped. */
  updateFlags(name: MailboxName, updates: readonly FlagUpdate[]): Promise<void>;

  /** Removes messages; UIDs that no longer exist are skipped. */
  expunge(name: MailboxName, uids: readonly number[]): Promise<void>;

  createMailbox(name: MailboxName, options?: CreateMailboxOptions): Promise<MailboxStatus>;
  renameMailbox(from: MailboxName, to: MailboxName): Promise<void>;
  deleteMailbox(name: MailboxName): Promise<void>;
  updateMailbox(name: MailboxName, update: MailboxUpdate): Promise<MailboxStatus>;
  setSubscribed(name: MailboxName, subscribed: boolean): Promise<void>;

  /** What this store remembered after its last sync with `peerId` (empty when none). */
  getPairState(peerId: string): Promise<PairState>;
  /** Replaces the remembered state for these mailbox GUIDs (others are kept). */
  setPairState(peerId: string, state: PairState): Promise<void>;

  /**
   * The flags and keywords of these messages (by GUID) as both sides agreed at the last sync
   * with `peerId`: the base that lets a conflict merge flag by flag. Unknown GUIDs are left out.
   * Optional: without it, a message both sides changed takes one side's flags whole.
   */
  getSyncedFlags?(peerId: string, mailboxGuid: string, guids: readonly string[]): Promise<Map<string, SyncedFlags>>;
  /** Records agreed flags; `replaceAll` first forgets every entry of the mailbox (a full sync). */
  setSyncedFlags?(peerId: string, mailboxGuid: string, entries: readonly ({ guid: string } & SyncedFlags)[], replaceAll: boolean): Promise<void>;

  /**
   * When the flags of these messages last changed, in milliseconds since the epoch by this
   * machine's clock, so that two stores' answers compare: what decides a flag difference no
   * earlier sync can explain (no base). Asked only for such messages, because it may cost a
   * look at each (a Maildir file's change time; a flag change is a rename). Unknown UIDs are
   * left out. Optional, and absent where no such clock exists: IMAP modseqs count changes on
   * one server and say nothing about another store's time.
   */
  flagChangeTimes?(name: MailboxName, uids: readonly number[]): Promise<Map<number, number>>;

  /** Releases locks, database handles and connections. */
  close(): Promise<void>;
}

export function mailboxKey(name: MailboxName): string {
  return name.join('\u0000');
}

export function sameMailbox(a: MailboxName, b: MailboxName): boolean {
  return mailboxKey(a) === mailboxKey(b);
}
