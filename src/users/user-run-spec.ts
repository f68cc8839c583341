/**
 * One user's run, resolved from the userdb record and the settings: the two locations (the
 * templates expanded for this user, never a path a user name could steer outside its root),
 * and the uid/gid the run must take. Pure but for turning uid names into numbers.
 */
import { MailferryError } from '../model/errors.js';
import type { Settings } from '../config/settings.js';
import { resolveGid, resolveUid } from '../config/userdb/system-accounts.js';
import type { UserRecord } from '../config/userdb/userdb.js';
import { expandPathTemplate, userVars } from '../config/template.js';

export interface UserRunSpec {
  user: string;
  source: string;
  destination: string;
  home?: string;
  uid?: number;
  gid?: number;
}

export interface UserRunRequest {
  /** SOURCE given on the command line (a template), or undefined for the user's own mail. */
  sourceArg?: string;
  /** DESTINATION given on the command line (a template). */
  destinationArg?: string;
  /** From a `user<TAB>destination` line of -F. */
  listDestination?: string;
  /** -d: the destination is the user's mail_replica. */
  replica: boolean;
}

/** Why a user is left out without it being a failure (-d and noreplicate). */
export class UserSkipped extends Error {}

export function resolveUserRun(record: UserRecord, settings: Settings, req: UserRunRequest): UserRunSpec {
  const { user } = record;
  const vars = userVars(user, record.home, record.extra);
  const sourceTemplate = req.sourceArg ?? record.mail ?? settings.mail_location;
  if (!sourceTemplate) {
    throw new MailferryError('config', `user ${user}: no mail location: set mail_location in the configuration or the userdb's mail field`);
  }
  let destTemplate = req.listDestination ?? req.destinationArg;
  if (destTemplate === undefined && req.replica) {
    if (record.noReplicate) throw new UserSkipped(`user ${user} has noreplicate set`);
    destTemplate = record.mailReplica ?? settings.mail_replica;
    if (!destTemplate) throw new MailferryError('config', `user ${user}: -d, but the user has no mail_replica (set it in the userdb or the configuration)`);
  }
  if (destTemplate === undefined) {
    throw new MailferryError('usage', `user ${user}: no destination: give DESTINATION (a template such as maildir:/backup/%u), -d, or a user<TAB>destination line in -F`);
  }
  const spec: UserRunSpec = {
    user,
    source: expandPathTemplate(sourceTemplate, vars, 'mail location'),
    destination: expandPathTemplate(destTemplate, vars, 'destination'),
    home: record.home,
  };
  const where = `user ${user}`;
  const uid = record.uid ?? (settings.mail_uid !== undefined ? resolveUid(settings.mail_uid, 'mail_uid') : undefined);
  const gid = record.gid ?? (settings.mail_gid !== undefined ? resolveGid(settings.mail_gid, 'mail_gid') : undefined);
  if (uid !== undefined) {
    if (uid < settings.first_valid_uid || (settings.last_valid_uid !== 0 && uid > settings.last_valid_uid)) {
      throw new MailferryError('permission', `${where}: uid ${uid} is outside first_valid_uid..last_valid_uid (${settings.first_valid_uid}..${settings.last_valid_uid || 'any'})`);
    }
    spec.uid = uid;
    spec.gid = gid ?? uid;
  }
  return spec;
}
