/**
 * Dovecot's userdb fields -> a UserRecord, as every userdb reads them: yes/no the way
 * Dovecot's replicator reads noreplicate, the userdb_ prefix winning over the plain name, ids
 * as numbers or system names, bad ids refused naming the user and the field's origin.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { MailferryError } from '../../src/model/errors.js';
import { isTruthyField, recordFromFields } from '../../src/config/userdb/userdb-fields.js';

test('noreplicate is yes unless it starts with n, N, 0, f or F (a set, empty field is yes)', () => {
  for (const yes of ['y', 'yes', 'YES', '1', 'true', 't', 'on', '', 'anything']) assert.equal(isTruthyField(yes), true, yes);
  for (const no of ['n', 'no', 'No', '0', 'false', 'f', 'F', 'never']) assert.equal(isTruthyField(no), false, no);
  assert.equal(recordFromFields('u', {}, 'w').noReplicate, undefined, 'a field that is not there is not set');
  assert.equal(recordFromFields('u', { userdb_noreplicate: 't' }, 'w').noReplicate, true);
});

test('a userdb_ field wins over the same field without the prefix, in either order', () => {
  const a = recordFromFields('u', { home: '/plain', userdb_home: '/prefixed', mail: 'maildir:~/M' }, 'w');
  const b = recordFromFields('u', { userdb_home: '/prefixed', home: '/plain' }, 'w');
  assert.equal(a.home, '/prefixed');
  assert.equal(b.home, '/prefixed');
  assert.equal(a.mail, 'maildir:~/M');
  const extra = recordFromFields('u', { quota_rule: '*:storage=1G', userdb_: 'x' }, 'w').extra;
  assert.deepEqual(extra, { quota_rule: '*:storage=1G', userdb_: 'x' }, 'a bare prefix is a field name of its own');
});

test('uid and gid: numbers, system names, and anything else refused as bad data naming the user', () => {
  const r = recordFromFields('u', { uid: ' 1000 ', gid: 'root' }, 'w');
  assert.equal(r.uid, 1000);
  assert.equal(r.gid, 0);
  assert.equal(recordFromFields('u', { uid: 'root' }, 'w').uid, 0);
  for (const bad of ['1e3', '0x10', '-1', '', '4294967295', '99999999999999999999', 'no-such-account-here']) {
    assert.throws(
      () => recordFromFields('alice', { uid: bad }, 'user_query'),
      (e: unknown) => e instanceof MailferryError && e.exitCode === 65 && /user_query: user alice: uid/.test(e.message),
      JSON.stringify(bad),
    );
  }
});
