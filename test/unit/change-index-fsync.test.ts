/**
 * The change index follows mail_fsync: opened with `fsync: false` it commits and checkpoints
 * without an fsync of its files; by default it fsyncs them (so this test can fail). Counted
 * with strace around a child process that writes one mailbox row and closes the index.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const INDEX_MODULE = join(import.meta.dirname, '../../src/storage/index/change-index.ts');
const haveStrace = spawnSync('strace', ['-V']).status === 0;

/** fsync/fdatasync calls on the index's files while a child adds a mailbox and closes the index. */
function indexSyncs(fsync: boolean | undefined): number {
  const dir = mkdtempSync(join(tmpdir(), 'mailferry-index-fsync-'));
  try {
    const script = `
      import { ChangeIndex } from ${JSON.stringify(INDEX_MODULE)};
      const index = ChangeIndex.open(${JSON.stringify(join(dir, 'idx'))}${fsync === undefined ? '' : `, { fsync: ${fsync} }`});
      index.addMailbox('0123456789abcdef0123456789abcdef', ['Ünïcode box.with dots'], 1234);
      if (index.listMailboxes().length !== 1) throw new Error('the mailbox row is missing');
      index.close();
    `;
    const log = join(dir, 'strace.log');
    const r = spawnSync('strace', ['-f', '-qq', '-y', '-e', 'trace=fsync,fdatasync', '-o', log, process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return readFileSync(log, 'utf8').split('\n').filter((l) => /(fsync|fdatasync)\(\d+<[^>]*mailferry\.index\.sqlite/.test(l)).length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('change index: fsync follows mail_fsync', { skip: haveStrace ? false : 'strace is not installed' }, () => {
  it('fsyncs its files by default and not at all with fsync: false', () => {
    assert.ok(indexSyncs(undefined) > 0, 'the default index did not fsync a commit');
    assert.ok(indexSyncs(true) > 0, 'fsync: true did not fsync a commit');
    assert.equal(indexSyncs(false), 0);
  });
});
