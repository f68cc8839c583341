/**
 * Child process for the hostile-server tests that measure memory: opens the IMAP location
 * argv[2] (password file argv[3]), reads every message of INBOX through the store as the
 * engine does, and writes to argv[4] what happened (per UID the length read or the error) with
 * its peak RSS, sampled while it read, and its RSS before the first body.
 */
import { writeFileSync } from 'node:fs';
import { openStore } from '../../src/storage/open-store.js';

async function main(): Promise<void> {
  const [location, passwordFile, out] = process.argv.slice(2);
  const store = await openStore(location!, { passwordFile, warn: () => {} } as never);
  const { messages } = await store.getMessages(['INBOX']);
  const before = process.memoryUsage().rss;
  let peak = before;
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const results: Record<number, number | string> = {};
  for (const m of messages) {
    try {
      let n = 0;
      for await (const c of await store.openMessage(['INBOX'], m.uid)) n += (c as Buffer).length;
      results[m.uid] = n;
    } catch (err) {
      results[m.uid] = (err as Error).message;
    }
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  clearInterval(sample);
  await store.close();
  writeFileSync(out!, JSON.stringify({ before, peak, results }));
}

if (process.argv[1]?.endsWith('imap-read-child.ts')) await main();
