/**
 * Whose mail a connection is served: the user's record from the userdb when one is configured
 * (unknown there: 67), else any well-formed name under the location template, as Dovecot's
 * static userdb allows every user. The location and the uid come from the same code a run over
 * users uses (user-run-spec.ts), so a template's variables are checked before a path is built,
 * and as root every user's mail is served with that user's uid, never root's.
 */
import type { Settings } from '../config/settings.js';
import { parseLocation } from '../config/location.js';
import { openUserDb } from '../config/userdb/open-userdb.js';
import type { UserDb, UserRecord } from '../config/userdb/userdb.js';
import { MailferryError } from '../model/errors.js';
import { isRemoteLocation } from '../remote/remote-location.js';
import { isTcpLocation } from '../remote/tcp-location.js';
import { runningAsRoot } from '../users/identity.js';
import { resolveUserRun } from '../users/user-run-spec.js';
import { checkUserName, shownUserName } from './user-name.js';

export interface ServedAccount {
  user: string;
  location: string;
  uid?: number;
  gid?: number;
  home?: string;
}

export class Accounts {
  private constructor(
    private readonly settings: Settings,
    private readonly userdb: UserDb | undefined,
  ) {}

  /** `template` is the LOCATION-TEMPLATE argument: the mail of users the userdb gives none (of every user without a userdb). */
  static async open(settings: Settings, template: string | undefined): Promise<Accounts> {
    const effective = template !== undefined ? { ...settings, mail_location: template } : settings;
    const userdb = await openUserDb(effective, 'userdb');
    if (!userdb && !effective.mail_location) {
      throw new MailferryError('usage', 'mailferry server needs a LOCATION-TEMPLATE (maildir:/srv/mail/%u/Maildir), mail_location, or a userdb with mail fields');
    }
    return new Accounts(effective, userdb);
  }

  get description(): string {
    return this.userdb ? this.userdb.description : `template ${this.settings.mail_location}`;
  }

  async resolve(name: string): Promise<ServedAccount> {
    checkUserName(name);
    const record: UserRecord | undefined = this.userdb ? await this.userdb.lookup(name) : { user: name, extra: {} };
    if (!record) throw new MailferryError('nouser', `unknown user ${shownUserName(name)}`);
    const spec = resolveUserRun(record, this.settings, { destinationArg: '', replica: false });
    const who = `user ${shownUserName(record.user)}`;
    if (isRemoteLocation(spec.source) || isTcpLocation(spec.source)) {
      throw new MailferryError('config', `${who}: the mail location ${spec.source} is not on this host; mailferry server serves local mail`);
    }
    try {
      parseLocation(spec.source, spec.home);
    } catch (err) {
      if (err instanceof MailferryError && err.kind === 'usage') throw new MailferryError('config', `${who}: ${err.message}`);
      throw err;
    }
    if (runningAsRoot() && spec.uid === undefined) {
      throw new MailferryError('permission', `${who}: no uid known; as root each user's mail is served with that user's uid (set uid in the userdb, or mail_uid)`);
    }
    if (!runningAsRoot() && spec.uid !== undefined && spec.uid !== process.geteuid?.()) {
      throw new MailferryError('permission', `${who}: the mail belongs to uid ${spec.uid} and the server runs as uid ${process.geteuid?.()}: run it as root or as that user`);
    }
    return { user: record.user, location: spec.source, uid: spec.uid, gid: spec.gid, home: spec.home };
  }

  async close(): Promise<void> {
    await this.userdb?.close();
  }
}
