/**
 * pairAgreesOn, the rule that lets the replicator drop the changes a sync made itself: on real
 * Maildir trees (Maildir++ and LAYOUT=fs folders with spaces, unicode and dots), a message a
 * sync copied is agreed; a delivery, flag change or expunge on either side after the sync is
 * not, nor a message on neither side; keywords compare by name through each side's dovecot-keywords; whatever cannot be judged
 * (no file name, outside both roots, mbox, an INBOX kept apart, a base name twice, links and
 * FIFOs where files are read) is never agreed. A randomized model check closes it.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { pairAgreesOn, type MessageChange } from '../../src/replicator/own-writes.js';
import type { WatchTarget } from '../../src/replicator/watch-target.js';

const base = mkdtempSync(join(tmpdir(), 'mf-own-writes-'));
after(() => rmSync(base, { recursive: true, force: true }));
let serial = 0;

function pair(folders: string[]): { a: string; b: string; targets: WatchTarget[] } {
  const dir = join(base, `p${++serial}`);
  const [a, b] = [join(dir, 'Maildir'), join(dir, 'replica')];
  for (const root of [a, b]) for (const f of folders) for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(root, f, sub), { recursive: true });
  return { a, b, targets: [{ kind: 'maildir', root: a }, { kind: 'maildir', root: b }] };
}

function put(root: string, folder: string, sub: 'new' | 'cur', name: string): MessageChange {
  writeFileSync(join(root, folder, sub, name), 'Subject: x\n\nbody\n');
  return { dir: join(root, folder, sub), name };
}

const at = (root: string, folder: string, sub: 'new' | 'cur', name: string): MessageChange => ({ dir: join(root, folder, sub), name });

test('a message the sync copied is agreed; a delivery, a flag change or an expunge after it is not, on either side and in any folder', async () => {
  const folders = ['', '.Work Stuff', '.Entw&APw-rfe', '.Lists.dev'];
  const { a, b, targets } = pair(folders);
  for (const f of folders) {
    const own = [put(a, f, 'new', '1700000000.M1P9.host'), put(b, f, 'cur', '1700000000.M1P9.host:2,')];
    assert.equal(await pairAgreesOn(targets, own), true, `copied into '${f}'`);
    const flagged = [put(a, f, 'cur', '1700000001.M2P9.host,S=20:2,FS'), put(b, f, 'cur', '1700000001.M2P9.host,S=20:2,FS')];
    assert.equal(await pairAgreesOn(targets, [...own, ...flagged]), true);
    // A delivery racing the sync's end: on one side only.
    const late = put(a, f, 'new', '1700000002.M3P9.host');
    assert.equal(await pairAgreesOn(targets, [...own, late]), false, `a late delivery into '${f}'`);
    rmSync(join(a, f, 'new', '1700000002.M3P9.host'));
    assert.equal(await pairAgreesOn(targets, [...own, late]), false, 'on neither side proves nothing: the other may hold it under another name');
    // New flags on the replica after the sync.
    rmSync(join(b, f, 'cur', '1700000001.M2P9.host,S=20:2,FS'));
    const renamed = put(b, f, 'cur', '1700000001.M2P9.host,S=20:2,S');
    assert.equal(await pairAgreesOn(targets, [renamed]), false, 'a flag change');
    assert.equal(await pairAgreesOn(targets, [at(b, f, 'cur', '1700000001.M2P9.host,S=20:2,FS')]), false, 'the old name of a renamed file names the same message');
    // An expunge on the source.
    rmSync(join(a, f, 'new', '1700000000.M1P9.host'));
    assert.equal(await pairAgreesOn(targets, own), false, 'an expunge');
  }
});

test('LAYOUT=fs folders, and keywords compared by name through each side\'s own dovecot-keywords', async () => {
  const { a, b, targets } = pair(['', 'Archiv/v1.2 notes', '日本語']);
  const f = 'Archiv/v1.2 notes';
  writeFileSync(join(a, f, 'dovecot-keywords'), '0 $Junk\n1 NonJunk\n');
  writeFileSync(join(b, f, 'dovecot-keywords'), '0 NonJunk\n1 $Junk\n');
  const same = [put(a, f, 'cur', 'k1.M1P1.h:2,Sa'), put(b, f, 'cur', 'k1.M1P1.h:2,Sb')];
  assert.equal(await pairAgreesOn(targets, same), true, '$Junk is a on one side and b on the other');
  const other = [put(a, f, 'cur', 'k2.M1P1.h:2,Sa'), put(b, f, 'cur', 'k2.M1P1.h:2,Sa')];
  assert.equal(await pairAgreesOn(targets, other), false, 'the same letter, another keyword');
  const unknown = [put(a, '日本語', 'cur', 'k3.M1P1.h:2,c'), put(b, '日本語', 'cur', 'k3.M1P1.h:2,c')];
  assert.equal(await pairAgreesOn(targets, unknown), false, 'a letter no keyword stands for is never agreed');
  assert.equal(await pairAgreesOn(targets, [put(a, '日本語', 'new', 'k4.M1P1.h'), put(b, '日本語', 'cur', 'k4.M1P1.h:2,')]), true);
});

test('what cannot be judged is never agreed: no file name, outside both roots, mbox, an INBOX apart, a name twice, links and FIFOs', async () => {
  const { a, b, targets } = pair(['', '.x']);
  const own = [put(a, '', 'new', 'n1.M1P1.h'), put(b, '', 'cur', 'n1.M1P1.h:2,')];
  assert.equal(await pairAgreesOn(targets, own), true);
  assert.equal(await pairAgreesOn(targets, [...own, { dir: join(a, 'cur'), name: undefined }]), false, 'an event without a name');
  assert.equal(await pairAgreesOn(targets, [{ dir: join(base, 'elsewhere', 'cur'), name: 'n1.M1P1.h' }]), false, 'outside both roots');
  assert.equal(await pairAgreesOn(targets, [{ dir: join(a, 'tmp'), name: 'n1.M1P1.h' }]), false, 'not a cur/ or new/');
  assert.equal(await pairAgreesOn(targets, [{ dir: join(a, 'cur'), name: '../n1.M1P1.h' }]), false, 'a name with a slash');
  assert.equal(await pairAgreesOn([targets[0]!, { kind: 'mbox', root: b }], own), false, 'an mbox side');
  assert.equal(await pairAgreesOn([targets[0]!, { ...targets[1]!, inbox: join(base, 'inbox') }], own), false, 'an INBOX kept apart');
  assert.equal(await pairAgreesOn([targets[0]!], own), false, 'one side only');
  put(a, '', 'cur', 'n1.M1P1.h:2,');
  assert.equal(await pairAgreesOn(targets, own), false, 'a base name twice on one side');
  // A cur/ that is a link, and a keywords file that is a FIFO or a link: refused, and nothing hangs.
  const { a: a2, b: b2, targets: t2 } = pair(['']);
  rmSync(join(b2, 'cur'), { recursive: true });
  mkdirSync(join(base, 'decoy'), { recursive: true });
  writeFileSync(join(base, 'decoy', 'l1.M1P1.h:2,'), '');
  symlinkSync(join(base, 'decoy'), join(b2, 'cur'));
  assert.equal(await pairAgreesOn(t2, [put(a2, '', 'new', 'l1.M1P1.h')]), false, 'a cur/ that is a link is not read');
  const { a: a3, b: b3, targets: t3 } = pair(['']);
  execFileSync('mkfifo', [join(a3, 'dovecot-keywords')]);
  symlinkSync('/etc/passwd', join(b3, 'dovecot-keywords'));
  assert.equal(await pairAgreesOn(t3, [put(a3, '', 'cur', 'f1.M1P1.h:2,a'), put(b3, '', 'cur', 'f1.M1P1.h:2,a')]), false);
  assert.equal(await pairAgreesOn(t3, [put(a3, '', 'cur', 'f2.M1P1.h:2,S'), put(b3, '', 'cur', 'f2.M1P1.h:2,S')]), true, 'no keyword letters: the keywords file is not needed');
});

test('randomized: agreed exactly when every message named is on both sides with the same flags (a model of the two folders)', async () => {
  type Where = { sub: 'new' | 'cur'; flags: string } | undefined;
  const where = fc.oneof(fc.constant(undefined), fc.record({ sub: fc.constantFrom('new' as const, 'cur' as const), flags: fc.constantFrom('', 'S', 'FS', 'RS', 'T') }));
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(where, where, fc.boolean()), { minLength: 1, maxLength: 8 }), async (msgs) => {
      const { a, b, targets } = pair(['', '.f']);
      const changes: MessageChange[] = [];
      let expected = true;
      msgs.forEach(([x, y, named], i) => {
        const name = `r${i}.M${i}P1.h`;
        const place = (root: string, w: Where) => {
          if (w === undefined) return join(root, '.f', 'cur');
          // new/ holds no flags: a file there is unflagged whatever the model said.
          const file = w.sub === 'new' ? name : `${name}:2,${w.flags}`;
          writeFileSync(join(root, '.f', w.sub, file), '');
          return join(root, '.f', w.sub);
        };
        const dirA = place(a, x);
        place(b, y);
        const flagsOf = (w: Where) => (w === undefined ? undefined : w.sub === 'new' ? '' : w.flags);
        if (named) {
          changes.push({ dir: dirA, name: x?.sub === 'new' ? name : `${name}:2,${x?.flags ?? ''}` });
          if (flagsOf(x) === undefined || flagsOf(x) !== flagsOf(y)) expected = false;
        }
      });
      assert.equal(await pairAgreesOn(targets, changes), expected);
    }),
    { numRuns: 60 },
  );
});
