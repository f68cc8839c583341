/**
 * `mailferry fetch`: the messages of one mailbox (uid, guid, flags), or one message's body.
 */
import type { Command } from 'commander';
import { usageError } from '../../model/errors.js';
import { parseMailboxName } from '../../model/mailbox-name.js';
import { flowLine, printJson, printLines } from '../output.js';
import { withStore, type GlobalOptions } from '../run.js';

export function registerFetchCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('fetch')
    .description('list uid, guid, flags, keywords and size of the messages in MAILBOX, or print one body')
    .argument('<location>', 'mail location, e.g. maildir:~/Maildir')
    .argument('<mailbox>', 'mailbox name, hierarchy separated as the store shows it')
    .option('--body <uid>', 'print the raw message with this UID instead')
    .option('--json', 'print JSON')
    .action(async (location: string, mailboxText: string, opts: { body?: string; json?: boolean }) => {
      await withStore(location, globals(), async (store) => {
        const name = parseMailboxName(mailboxText, store.separator);
        if (opts.body !== undefined) {
          const uid = Number(opts.body);
          if (!Number.isInteger(uid) || uid <= 0) throw usageError(`invalid --body '${opts.body}': expected a UID`);
          const { pipeline } = await import('node:stream/promises');
          await pipeline(await store.openMessage(name, uid), process.stdout, { end: false });
          return;
        }
        const { messages } = await store.getMessages(name);
        if (opts.json) {
          printJson(messages.map((m) => ({ ...m, receivedDate: new Date(m.receivedDate).toISOString() })));
          return;
        }
        printLines(
          messages.map((m) =>
            flowLine([
              ['uid', m.uid],
              ['guid', m.guid],
              ['flags', [...m.flags, ...m.keywords].join(' ')],
              ['size', m.size],
              ['modseq', m.modseq],
            ]),
          ),
        );
      });
    });
}
