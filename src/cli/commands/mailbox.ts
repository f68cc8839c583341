/**
 * `mailferry mailbox list|status`: what `doveadm mailbox list|status` shows, for any store.
 */
import type { Command } from 'commander';
import { formatMailboxName, parseMailboxName } from '../../model/mailbox-name.js';
import { notFoundError } from '../../model/errors.js';
import type { MailboxStatus } from '../../storage/store.js';
import { flowLine, printJson, printLines } from '../output.js';
import { withStore, type GlobalOptions } from '../run.js';

const STATUS_FIELDS = ['messages', 'uidvalidity', 'uidnext', 'highestmodseq', 'guid'] as const;

function statusJson(s: MailboxStatus, separator: string) {
  return {
    mailbox: formatMailboxName(s.name, separator),
    name: s.name,
    messages: s.messages,
    uidvalidity: s.uidValidity,
    uidnext: s.uidNext,
    highestmodseq: s.highestModseq,
    guid: s.guid,
    specialUse: s.specialUse,
    subscribed: s.subscribed,
  };
}

export function registerMailboxCommands(program: Command, globals: () => GlobalOptions): void {
  const mailbox = program.command('mailbox').description('inspect the mailboxes of a mail location');

  mailbox
    .command('list')
    .description('list every mailbox of LOCATION')
    .argument('<location>', 'mail location, e.g. maildir:~/Maildir')
    .option('--json', 'print JSON')
    .action(async (location: string, opts: { json?: boolean }) => {
      await withStore(location, globals(), async (store) => {
        const list = await store.listMailboxes();
        const names = list.mailboxes.map((m) => m);
        if (opts.json) {
          printJson(names.map((m) => ({ mailbox: formatMailboxName(m.name, list.separator), name: m.name, guid: m.guid, specialUse: m.specialUse, subscribed: m.subscribed })));
        } else {
          printLines(names.map((m) => formatMailboxName(m.name, list.separator)));
        }
      });
    });

  mailbox
    .command('status')
    .description('show messages, uidvalidity, uidnext, highestmodseq and guid of mailboxes (all when none is named)')
    .argument('<location>', 'mail location, e.g. maildir:~/Maildir')
    .argument('[mailbox...]', 'mailbox names, hierarchy separated as the store shows them')
    .option('--json', 'print JSON')
    .action(async (location: string, mailboxes: string[], opts: { json?: boolean }) => {
      await withStore(location, globals(), async (store) => {
        let statuses: MailboxStatus[];
        if (mailboxes.length === 0) {
          statuses = (await store.listMailboxes()).mailboxes;
        } else {
          statuses = [];
          for (const text of mailboxes) {
            const s = await store.mailboxStatus(parseMailboxName(text, store.separator));
            if (!s) throw notFoundError(`mailbox '${text}' does not exist in ${location}`);
            statuses.push(s);
          }
        }
        if (opts.json) {
          printJson(statuses.map((s) => statusJson(s, store.separator)));
          return;
        }
        printLines(
          statuses.map((s) => {
            const j = statusJson(s, store.separator);
            return flowLine([['mailbox', j.mailbox], ...STATUS_FIELDS.map((f): [string, string | number] => [f, j[f]])]);
          }),
        );
      });
    });
}
