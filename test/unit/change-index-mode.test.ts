/**
 * A new change index takes its directory's permissions without execute bits (a private Maildir's
 * index is 0600 whatever the umask), as do the WAL files SQLite makes beside it; a state
 * directory the index makes is 0700; an index that exists keeps its mode.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ChangeIndex } from '../../src/storage/index/change-index.js';

const root = mkdtempSync(join(tmpdir(), 'mailferry-index-mode-'));
after(() => rmSync(root, { recursive: true, force: true }));
const mode = (p: string) => statSync(p).mode & 0o777;
const INDEX = 'mailferry.index.sqlite';

function openAndWrite(dir: string): ChangeIndex {
  const index = ChangeIndex.open(dir);
  index.addMailbox('0123456789abcdef0123456789abcdef', ['INBOX'], 7);
  return index;
}

describe('the change index file mode', () => {
  it('in a private directory the index and its WAL files are private, whatever the umask', () => {
    const dir = join(root, 'private');
    mkdirSync(dir);
    chmodSync(dir, 0o700);
    const old = process.umask(0o022);
    try {
      const index = openAndWrite(dir);
      assert.equal(mode(join(dir, INDEX)), 0o600);
      for (const suffix of ['-wal', '-shm']) if (existsSync(join(dir, INDEX + suffix))) assert.equal(mode(join(dir, INDEX + suffix)), 0o600, suffix);
      index.close();
    } finally {
      process.umask(old);
    }
  });

  it('a directory it makes is 0700, and the index in it 0600', () => {
    const dir = join(root, 'state', 'mailferry', 'store');
    const index = openAndWrite(dir);
    index.close();
    assert.equal(mode(dir), 0o700);
    assert.equal(mode(join(dir, INDEX)), 0o600);
  });

  it('a directory others may read gives an index they may read, as before', () => {
    const dir = join(root, 'shared');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    openAndWrite(dir).close();
    assert.equal(mode(join(dir, INDEX)), 0o644);
  });

  it('an index that exists keeps its mode and its data', () => {
    const dir = join(root, 'kept');
    mkdirSync(dir);
    chmodSync(dir, 0o700);
    openAndWrite(dir).close();
    chmodSync(join(dir, INDEX), 0o640);
    const index = ChangeIndex.open(dir);
    assert.equal(index.listMailboxes().length, 1);
    index.close();
    assert.equal(mode(join(dir, INDEX)), 0o640);
  });

  it('a file in the index\'s place that is not a database is refused as before', () => {
    const dir = join(root, 'garbage');
    mkdirSync(dir);
    writeFileSync(join(dir, INDEX), 'not a database at all, but long enough to have a header of sorts......');
    assert.throws(() => ChangeIndex.open(dir), /corrupt|not a database/);
  });
});
