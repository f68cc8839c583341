/**
 * Child process for the scan's interruption tests: opens the Maildir at argv[2] and lists the
 * mailbox named by argv[3] (JSON hierarchy parts), which scans it. MAILFERRY_FAILPOINT kills it.
 */
import { parseMaildirLocation } from '../../src/config/location.js';
import { MaildirStore } from '../../src/storage/maildir/maildir-store.js';

const store = MaildirStore.open(parseMaildirLocation(`maildir:${process.argv[2]!}`), { fsync: false, warn: () => {} });
try {
  await store.getMessages(JSON.parse(process.argv[3]!) as string[]);
} finally {
  await store.close();
}
