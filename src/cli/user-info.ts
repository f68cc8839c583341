/**
 * What `mailferry user` shows of one user: the userdb's fields and the locations a backup or
 * sync of that user would use, resolved by the runs' own code (user-run-spec.ts), so what is
 * shown is what would run, errors included. Output as doveadm user's `field<TAB>value` lines or
 * one JSON object.
 */
import type { AccountNames } from '../config/userdb/account-names.js';
import type { UserRecord } from '../config/userdb/userdb.js';
import { MASK, maskPasswords } from '../config/secret-mask.js';
import type { Settings } from '../config/settings.js';
import { exitCodeOf, MailferryError } from '../model/errors.js';
import { resolveUserRun } from '../users/user-run-spec.js';

export interface UserInfo {
  user: string;
  uid?: number;
  uidName?: string;
  gid?: number;
  gidName?: string;
  home?: string;
  /** The user's mail location, expanded. */
  mail?: string;
  /** Where -d sends this user's mail, expanded. */
  mailReplica?: string;
  /** The destination a `user<TAB>destination` line of -F gives, expanded. */
  destination?: string;
  noReplicate?: boolean;
  extra: Record<string, string>;
  error?: { message: string; exitCode: number };
}

function failure(err: unknown): { message: string; exitCode: number } {
  return { message: err instanceof MailferryError ? err.message : String(err), exitCode: exitCodeOf(err) };
}

export function describeUser(record: UserRecord, settings: Settings, names: AccountNames, listDestination?: string): UserInfo {
  const info: UserInfo = { user: record.user, uid: record.uid, gid: record.gid, home: record.home, noReplicate: record.noReplicate === true, extra: record.extra };
  try {
    // The user's own side, as every run resolves it; an empty DESTINATION stands for "none asked".
    const own = resolveUserRun(record, settings, { replica: false, destinationArg: '', listDestination });
    info.mail = own.source;
    info.uid = own.uid;
    info.gid = own.gid;
    if (listDestination !== undefined) info.destination = own.destination;
    if (record.mailReplica !== undefined || settings.mail_replica !== undefined) {
      // As -d resolves it; noreplicate only makes -d skip the user, the replica is still shown.
      info.mailReplica = resolveUserRun({ ...record, noReplicate: false }, settings, { replica: true }).destination;
    }
  } catch (err) {
    info.error = failure(err);
  }
  if (info.uid !== undefined) info.uidName = names.userName(info.uid);
  if (info.gid !== undefined) info.gidName = names.groupName(info.gid);
  return info;
}

/** A user the selection could not find (unknown, a mask matching no one, a bad -F line). */
export function unknownUserInfo(user: string, error: MailferryError): UserInfo {
  return { user, extra: {}, error: failure(error) };
}

/** A field whose name says it holds a secret (an SQL userdb may return a password column). */
const SECRET_FIELD = /pass|secret|token|key/i;

/**
 * What may be printed of a user: passwords in URIs (imap://user:PASSWORD@host) and `password=`
 * pairs masked, fields named as secrets hidden whole.
 */
export function maskedUserInfo(info: UserInfo): UserInfo {
  const mask = (v: string | undefined) => (v === undefined ? undefined : maskPasswords(v));
  const extra = Object.fromEntries(Object.entries(info.extra).map(([k, v]) => [k, SECRET_FIELD.test(k) && v !== '' ? MASK : maskPasswords(v)]));
  const error = info.error && { ...info.error, message: maskPasswords(info.error.message) };
  return { ...info, home: mask(info.home), mail: mask(info.mail), mailReplica: mask(info.mailReplica), destination: mask(info.destination), extra, error };
}

/** A value on one output line: a tab or a line break in it would forge fields or users. */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

function idText(id: number, name: string | undefined): string {
  return name === undefined ? String(id) : `${id} (${name})`;
}

/** The `field<TAB>value` lines of one user. */
export function userInfoLines(shown: UserInfo): string[] {
  const info = maskedUserInfo(shown);
  const fields: [string, string | undefined][] = [
    ['user', info.user],
    ['uid', info.uid === undefined ? undefined : idText(info.uid, info.uidName)],
    ['gid', info.gid === undefined ? undefined : idText(info.gid, info.gidName)],
    ['home', info.home],
    ['mail', info.mail],
    ['mail_replica', info.mailReplica],
    ['destination', info.destination],
    ['noreplicate', info.noReplicate === undefined ? undefined : info.noReplicate ? 'yes' : 'no'],
    ...Object.entries(info.extra),
    ['error', info.error?.message],
  ];
  return fields.filter((f): f is [string, string] => f[1] !== undefined).map(([k, v]) => `${oneLine(k)}\t${oneLine(v)}`);
}

export function userInfoJson(shown: UserInfo): string {
  const info = maskedUserInfo(shown);
  // JSON.stringify leaves out what is undefined.
  return JSON.stringify({
    user: info.user,
    uid: info.uid,
    uid_name: info.uidName,
    gid: info.gid,
    gid_name: info.gidName,
    home: info.home,
    mail: info.mail,
    mail_replica: info.mailReplica,
    destination: info.destination,
    noreplicate: info.noReplicate,
    extra: info.extra,
    error: info.error?.message,
    exitCode: info.error?.exitCode,
  });
}
