/**
 * `sync -1` after an earlier backup or sync merges flags flag by flag, as dsync merges the
 * flag changes each side made since the last sync: the destination gains the flags and
 * keywords the source changed and keeps the ones it changed itself, whichever side changed
 * later, and the source is never written.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { MailStore, SystemFlag } from '../../src/storage/store.js';
import { runBackup } from '../../src/sync/backup.js';
import { runSync } from '../../src/sync/sync.js';
import { message, req } from '../contract/store-contract.js';
import { INBOX, muaSetFlags, openMaildir, tempRoots, withStores } from './maildir-pair.js';

async function flagsOf(s: MailStore): Promise<string> {
  const [m] = (await s.getMessages(INBOX)).messages;
  return [...m!.flags, ...m!.keywords].sort().join(' ');
}

/** One message with \Answered and keyword "old", equal on both sides after `earlier`. */
async function withMessage(earlier: 'backup' | 'sync', fn: (a: string, b: string, guid: string) => Promise<void>): Promise<void> {
  const { dir, a, b } = await tempRoots('oneway-flags');
  try {
    const guid = await withStores(a, b, async (sa, sb) => {
      const [m] = await sa.saveMessages(INBOX, [req(message('x'), { flags: ['\\Answered'], keywords: ['old'] })]);
      if (earlier === 'backup') await runBackup(sa, sb);
      else await runSync(sa, sb);
      return m!.guid;
    });
    await fn(a, b, guid);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const oneway = (a: string, b: string) => withStores(a, b, (sa, sb) => runSync(sa, sb, { mode: 'oneway' }));
async function inStore<T>(root: string, fn: (s: MailStore) => Promise<T>): Promise<T> {
  const s = openMaildir(root);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
const flags = (root: string) => inStore(root, flagsOf);
const setFlags = (root: string, flags: SystemFlag[], keywords: string[]) => inStore(root, (s) => s.updateFlags(INBOX, [{ uid: 1, flags, keywords }]));

for (const earlier of ['backup', 'sync'] as const) {
  describe(`sync -1 after a ${earlier}`, () => {
    it('A adds \\Seen, B adds \\Flagged: B ends with both, A keeps its own', () =>
      withMessage(earlier, async (a, b) => {
        await setFlags(a, ['\\Answered', '\\Seen'], ['old']);
        await setFlags(b, ['\\Answered', '\\Flagged'], ['old']);
        await oneway(a, b);
        assert.equal(await flags(b), '\\Answered \\Flagged \\Seen old');
        assert.equal(await flags(a), '\\Answered \\Seen old');
      }));

    it('removals and keywords merge the same way: A drops \\Answered and adds "new", B drops "old" and adds \\Seen', () =>
      withMessage(earlier, async (a, b) => {
        await setFlags(a, [], ['new', 'old']);
        await setFlags(b, ['\\Answered', '\\Seen'], []);
        await oneway(a, b);
        assert.equal(await flags(b), '\\Seen new');
        assert.equal(await flags(a), 'new old');
      }));

    for (const later of ['A', 'B'] as const) {
      it(`through a MUA on disk, with ${later} changing later: both changes stay`, () =>
        withMessage(earlier, async (a, b, guid) => {
          // Maildir's change times are file ctimes: a second apart, so "later" is unambiguous.
          const [first, second] = later === 'A' ? [() => muaSetFlags(b, INBOX, guid, 'F'), () => muaSetFlags(a, INBOX, guid, 'S')] : [() => muaSetFlags(a, INBOX, guid, 'S'), () => muaSetFlags(b, INBOX, guid, 'F')];
          first();
          await sleep(1100);
          second();
          await oneway(a, b);
          // The MUA dropped \Answered on both sides (letters S and F alone); "old" is a keyword letter it dropped too.
          assert.equal(await flags(b), '\\Flagged \\Seen');
          assert.equal(await flags(a), '\\Seen');
        }));
    }

    it("B's own change kept by one sync -1 still stays when A changes another flag before the next", () =>
      withMessage(earlier, async (a, b) => {
        await setFlags(b, ['\\Answered', '\\Flagged'], ['old']);
        await oneway(a, b);
        assert.equal(await flags(b), '\\Answered \\Flagged old', 'A changed nothing');
        await setFlags(a, ['\\Answered', '\\Seen'], ['old']);
        await oneway(a, b);
        assert.equal(await flags(b), '\\Answered \\Flagged \\Seen old');
      }));

    it('a flag A set and a later sync -1 carried is removed again when A removes it, B\'s own flag staying', () =>
      withMessage(earlier, async (a, b) => {
        await setFlags(a, ['\\Answered', '\\Seen'], ['old']);
        await setFlags(b, ['\\Answered', '\\Flagged'], ['old']);
        await oneway(a, b);
        assert.equal(await flags(b), '\\Answered \\Flagged \\Seen old');
        await setFlags(a, ['\\Answered'], ['old']);
        await oneway(a, b);
        assert.equal(await flags(b), '\\Answered \\Flagged old', "A's removal of \\Seen reached B");
        // And a two-way sync afterwards hands B's own \Flagged to A without bringing \Seen back.
        await withStores(a, b, (sa, sb) => runSync(sa, sb));
        assert.equal(await flags(a), '\\Answered \\Flagged old');
        assert.equal(await flags(b), '\\Answered \\Flagged old');
      }));
  });
}

it('a flag A changes while sync -1 runs reaches B on the next run', async () => {
  const { dir, a, b } = await tempRoots('oneway-flags-during');
  try {
    await withStores(a, b, async (sa, sb) => {
      await sa.saveMessages(INBOX, [req(message('x'))]);
      await runBackup(sa, sb);
      await sa.saveMessages(INBOX, [req(message('y'))]);
      // A's user reads x while the run copies y: after the run has planned, before it ends.
      let changed = false;
      const during = new Proxy(sa, {
        get(target, prop) {
          if (prop === 'openMessage') {
            return async (...args: Parameters<MailStore['openMessage']>) => {
              if (!changed) {
                changed = true;
                await target.updateFlags(INBOX, [{ uid: 1, flags: ['\\Seen'], keywords: [] }]);
              }
              return target.openMessage(...args);
            };
          }
          const v = Reflect.get(target, prop) as unknown;
          return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
        },
      });
      await runSync(during, sb, { mode: 'oneway' });
      assert.ok(changed);
      await runSync(sa, sb, { mode: 'oneway' });
      assert.deepEqual((await sb.getMessages(INBOX)).messages.map((m) => m.flags.join(' ')), ['\\Seen', '']);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
