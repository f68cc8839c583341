/**
 * The pseudo message UW-IMAP and Dovecot keep first in an mbox that holds no mail, so that its
 * UIDVALIDITY and last UID survive: a message with `X-IMAP`, hidden from readers.
 */
import { formatFromLine } from './from-line.js';
import { formatImapBase, type ImapBase } from './mbox-headers.js';

export function formatPseudoMessage(base: ImapBase, now: number, host: string): string {
  const date = new Date(Math.floor(now / 1000) * 1000).toUTCString().replace('GMT', '+0000');
  return (
    formatFromLine('MAILER_DAEMON', now) +
    `Date: ${date}\n` +
    `From: Mail System Internal Data <MAILER-DAEMON@${host}>\n` +
    "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n" +
    `Message-ID: <${Math.floor(now / 1000)}@${host}>\n` +
    formatImapBase('X-IMAP', base) +
    'Status: RO\n' +
    '\n' +
    'This text is part of the internal format of your mail folder, and is not\n' +
    'a real message.  It is created automatically by the mail system software.\n' +
    'If deleted, important folder data will be lost, and it will be re-created\n' +
    'with the data reset to initial values.\n' +
    '\n'
  );
}
